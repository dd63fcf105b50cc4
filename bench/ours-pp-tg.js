// napi-llama's side of llama-bench's two standard tests (bench/run.js --suites server):
//   pp512  prompt processing: generate() on a prompt of PROMPT_TOKENS tokens, one token out;
//          prompt tokens ÷ the engine's own promptMs
//   tg128  text generation: generate() of GEN_TOKENS tokens after a short prompt; the
//          engine's own tokens/s (first to last sampled token)
// One engine, one slot, the prompt cache off (every repetition evaluates its whole prompt, as
// llama-bench does). Prints one JSON line: per test, the tokens/s of each measured repetition.
//   node bench/ours-pp-tg.js MODEL REPS THREADS [PROMPT_TOKENS] [GEN_TOKENS]
'use strict'
const { Engine } = require('..')

/** Text of exactly `n` tokens: a long passage's first `n` tokens, turned back into text. */
function promptOf(engine, n) {
  const sentence = 'The river carried small boats past the old mill, and the people of the town watched them from the bridge. '
  const ids = engine.tokenize(sentence.repeat(Math.ceil((n * 2) / 10)))
  return engine.detokenize(ids.slice(0, n))
}

async function main() {
  const [modelPath, reps, threads, promptTokens = '512', genTokens = '128'] = process.argv.slice(2)
  const pp = Number(promptTokens)
  const tg = Number(genTokens)
  const engine = await Engine.load({ modelPath, threads: Number(threads), parallel: 1, contextSize: pp + tg + 64, batchSize: pp })
  const prompt = promptOf(engine, pp)
  const out = { pp: [], tg: [], ppTokens: [], tgTokens: [] }
  for (let rep = 0; rep < Number(reps) + 1; rep++) {
    const a = await engine.generate(prompt, { maxTokens: 1, temperature: 0, cachePrompt: false })
    const b = await engine.generate('Once upon a time', { maxTokens: tg, temperature: 0, cachePrompt: false, stop: [] })
    if (rep === 0) continue // warm-up
    out.pp.push((a.promptTokens * 1000) / a.timings.promptMs)
    out.ppTokens.push(a.promptTokens)
    out.tg.push(b.timings.tokensPerSecond)
    out.tgTokens.push(b.completionTokens)
  }
  await engine.unload()
  console.log(JSON.stringify(out))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
