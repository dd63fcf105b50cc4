// napi-llama's side of llama-bench's two standard tests (bench/run.js --suites server):
//   pp512  prompt processing: generate() on a prompt of PROMPT_TOKENS tokens, one token out;
//          prompt tokens ÷ the engine's own promptMs
//   tg128  text generation: generate() of GEN_TOKENS tokens after a short prompt; the
//          engine's own tokens/s (first to last sampled token)
// The measurement is the one `napi-llama bench` makes (lib/cli/pp-tg.ts): one engine, one
// slot, the prompt cache bypassed (every repetition evaluates its whole prompt, as llama-bench
// does), one warm-up. Prints one JSON line: per test, the tokens/s of each measured repetition.
//   node bench/ours-pp-tg.js MODEL REPS THREADS [PROMPT_TOKENS] [GEN_TOKENS]
'use strict'
const { Engine } = require('..')
const { contextForPpTg, measurePpTg } = require('../dist/cli/pp-tg')

async function main() {
  const [modelPath, reps, threads, promptTokens = '512', genTokens = '128'] = process.argv.slice(2)
  const pp = Number(promptTokens)
  const tg = Number(genTokens)
  const engine = await Engine.load({ modelPath, threads: Number(threads), parallel: 1, contextSize: contextForPpTg(pp, tg), batchSize: pp })
  const out = await measurePpTg(engine, { promptTokens: pp, genTokens: tg, reps: Number(reps) })
  await engine.unload()
  console.log(JSON.stringify(out))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
