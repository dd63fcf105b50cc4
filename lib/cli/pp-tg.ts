// llama-bench's two standard measurements through the engine, shared by `napi-llama bench`
// and the benchmark suite (bench/ours-pp-tg.js):
//   pp  prompt processing: a prompt of exactly N tokens, one token out; tokens ÷ the engine's promptMs
//   tg  text generation: M tokens after a short prompt; the engine's tokens/s (first to last token)
// The engine should have one slot; every run evaluates its whole prompt (the prompt cache is
// bypassed), as llama-bench does. One warm-up run of each comes first and is not counted.
import type { Engine } from '../engine'

export interface PpTgRuns {
  /** Prompt tokens/s of each measured run. */
  pp: number[]
  ppTokens: number[]
  /** Generated tokens/s of each measured run. */
  tg: number[]
  /** Tokens each generation run produced: fewer than asked when the model ended its text. */
  tgTokens: number[]
}

const PASSAGE = 'The river carried small boats past the old mill, and the people of the town watched them from the bridge. '
const GENERATION_PROMPT = 'Once upon a time'

/**
 * A prompt that costs exactly `n` tokens: a long passage's first tokens, turned back into text.
 * The model's own leading tokens (a BOS) count, as in llama-bench, whose pp512 is one batch of 512.
 */
export function promptOfTokens(engine: Engine, n: number): string {
  const perPassage = Math.max(1, engine.tokenize(PASSAGE).length)
  const ids = engine.tokenize(PASSAGE.repeat(Math.ceil(n / perPassage) + 1))
  const text = engine.detokenize(ids.slice(0, n))
  const added = engine.countTokens(text) - n
  return added > 0 ? engine.detokenize(ids.slice(0, n - added)) : text
}

/** The context an engine needs for these runs. */
export function contextForPpTg(promptTokens: number, genTokens: number): number {
  // Room for either run, with its BOS token and the generation run's short prompt.
  return promptTokens + genTokens + 64
}

export async function measurePpTg(engine: Engine, { promptTokens, genTokens, reps }: { promptTokens: number; genTokens: number; reps: number }): Promise<PpTgRuns> {
  const prompt = promptOfTokens(engine, promptTokens)
  const runs: PpTgRuns = { pp: [], ppTokens: [], tg: [], tgTokens: [] }
  for (let rep = 0; rep <= reps; rep++) {
    const a = await engine.generate(prompt, { maxTokens: 1, temperature: 0, cachePrompt: false })
    const b = await engine.generate(GENERATION_PROMPT, { maxTokens: genTokens, temperature: 0, cachePrompt: false, stop: [] })
    if (rep === 0) continue
    runs.pp.push((a.promptTokens * 1000) / Math.max(a.timings.promptMs, 1e-3))
    runs.ppTokens.push(a.promptTokens)
    runs.tg.push(b.timings.tokensPerSecond)
    runs.tgTokens.push(b.completionTokens)
  }
  return runs
}
