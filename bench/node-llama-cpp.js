// node-llama-cpp 3.22.1's measurement for bench/run.js, the same workload as ours.js.
'use strict'
const path = require('node:path')

async function main() {
  const [modelPath, tokens, reps, threads, prompt] = process.argv.slice(2)
  const { getLlama, LlamaCompletion } = await import(path.join(__dirname, 'node_modules', 'node-llama-cpp', 'dist', 'index.js'))
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' })
  const model = await llama.loadModel({ modelPath })
  const context = await model.createContext({ contextSize: 1024, threads: Number(threads) })
  const tps = []
  const ttft = []
  const generated = []
  for (let i = 0; i < Number(reps) + 1; i++) {
    const sequence = context.getSequence()
    const completion = new LlamaCompletion({ contextSequence: sequence })
    const start = process.hrtime.bigint()
    let first = null
    let last = null
    let count = 0
    await completion.generateCompletion(prompt, {
      maxTokens: Number(tokens),
      temperature: 0,
      onToken(toks) {
        const now = process.hrtime.bigint()
        if (first === null) first = now
        last = now
        count += toks.length
      },
    })
    sequence.dispose()
    if (i === 0) continue
    ttft.push(Number(first - start) / 1e6)
    tps.push((count - 1) / (Number(last - first) / 1e9))
    generated.push(count)
  }
  await context.dispose()
  await model.dispose()
  console.log(JSON.stringify({ decodeTps: tps, ttftMs: ttft, tokens: generated }))
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
