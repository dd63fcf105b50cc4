// `napi-llama bench <model>`: prompt-processing and generation speed through the engine, the
// median of a few runs (llama-bench's pp and tg; the full comparison suite is `npm run bench`).
import type { CommandSpec, ParsedCommand } from './args'
import { countOption, flag } from './args'
import { formatCount, median, plural } from './format'
import { loadEngine } from './load'
import { MODEL_OPERAND_NOTE, resolveModel } from './models'
import { contextForPpTg, measurePpTg } from './pp-tg'

export const spec: CommandSpec = {
  name: 'bench',
  operands: '<model>',
  minOperands: 1,
  maxOperands: 1,
  brief: 'prompt and generation tokens/s on this machine',
  summary:
    'Measure a model on this machine: prompt processing (a prompt of --prompt-tokens, tokens/s) and generation (--gen-tokens after a short prompt, tokens/s), each the median of --reps runs after one warm-up run, through the engine with one slot and the prompt cache bypassed.',
  options: {
    threads: { type: 'string', value: 'N', description: 'llama.cpp threads (default: the physical cores)' },
    'prompt-tokens': { type: 'string', value: 'N', description: 'prompt length of the pp test (default 512)' },
    'gen-tokens': { type: 'string', value: 'N', description: 'tokens generated in the tg test (default 128)' },
    reps: { type: 'string', value: 'N', description: 'measured runs of each test (default 3)' },
    json: { type: 'boolean', description: 'print one JSON object: the medians and every run' },
  },
  notes: [MODEL_OPERAND_NOTE],
}

const DEFAULT_PROMPT_TOKENS = 512
const DEFAULT_GEN_TOKENS = 128
const DEFAULT_REPS = 3

export async function run({ values, operands }: ParsedCommand): Promise<number> {
  const modelPath = resolveModel(operands[0])
  const threads = countOption(spec, values, 'threads')
  const promptTokens = countOption(spec, values, 'prompt-tokens') ?? DEFAULT_PROMPT_TOKENS
  const genTokens = countOption(spec, values, 'gen-tokens') ?? DEFAULT_GEN_TOKENS
  const reps = countOption(spec, values, 'reps') ?? DEFAULT_REPS
  const engine = await loadEngine({
    modelPath,
    parallel: 1,
    contextSize: contextForPpTg(promptTokens, genTokens),
    // The whole prompt in one decode step, as llama-bench evaluates it.
    batchSize: promptTokens,
    ...(threads !== undefined && { threads }),
  })
  try {
    const runs = await measurePpTg(engine, { promptTokens, genTokens, reps })
    const info = engine.info
    const result = {
      model: { path: info.modelPath, name: info.name, architecture: info.architecture, parameters: info.parameters, sizeBytes: info.sizeBytes },
      threads: info.threads,
      reps,
      // What the engine evaluated (the text of N tokens may retokenize a little differently).
      pp: { tokens: median(runs.ppTokens), tokensPerSecond: median(runs.pp), runs: runs.pp },
      tg: { tokens: genTokens, tokensPerSecond: median(runs.tg), runs: runs.tg, generated: runs.tgTokens },
    }
    if (flag(values, 'json')) {
      process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
      return 0
    }
    const runsOf = (list: number[]) => list.map((v) => v.toFixed(1)).join(', ')
    const short = runs.tgTokens.some((n) => n < genTokens) ? ` (the model ended its text early: ${runs.tgTokens.join(', ')} tokens)` : ''
    process.stdout.write(
      `${info.name} · ${info.architecture} · ${formatCount(info.parameters)} parameters · ${plural(info.threads, 'thread')}\n` +
        `pp${result.pp.tokens}  ${result.pp.tokensPerSecond.toFixed(1).padStart(9)} tokens/s  (median of ${reps}: ${runsOf(runs.pp)})\n` +
        `tg${genTokens}  ${result.tg.tokensPerSecond.toFixed(1).padStart(9)} tokens/s  (median of ${reps}: ${runsOf(runs.tg)})${short}\n`,
    )
    return 0
  } finally {
    await engine.unload()
  }
}
