// node-llama-cpp 3.22.1's side of the concurrency benchmark: one context with `slots`
// sequences (its own batching), N completions started together. Same output as
// ours-concurrency.js.
'use strict'
const path = require('node:path')

async function main() {
  const [modelPath, tokens, reps, threads, slots, levels, promptsJson] = process.argv.slice(2)
  const prompts = JSON.parse(promptsJson)
  const { getLlama, LlamaCompletion } = await import(path.join(__dirname, 'node_modules', 'node-llama-cpp', 'dist', 'index.js'))
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' })
  const model = await llama.loadModel({ modelPath })
  const context = await model.createContext({ contextSize: 1024, sequences: Number(slots), threads: Number(threads) })
  // All sequences are taken once and reused (cleared) between runs: node-llama-cpp hands a
  // disposed sequence's id back only later, and getSequence() then throws "No sequences left".
  const all = Array.from({ length: Number(slots) }, () => context.getSequence())
  const out = {}
  for (const n of levels.split(',').map(Number)) {
    const aggregateTps = []
    const ttftMs = []
    for (let rep = 0; rep < Number(reps) + 1; rep++) {
      const sequences = all.slice(0, n)
      await Promise.all(sequences.map((s) => s.clearHistory()))
      const start = performance.now()
      const results = await Promise.all(
        prompts.slice(0, n).map(async (prompt, i) => {
          let first = null
          let count = 0
          const completion = new LlamaCompletion({ contextSequence: sequences[i] })
          await completion.generateCompletion(prompt, {
            maxTokens: Number(tokens),
            temperature: 0,
            onToken(toks) {
              if (first === null) first = performance.now()
              count += toks.length
            },
          })
          return { ttftMs: first - start, tokens: count }
        }),
      )
      const wall = (performance.now() - start) / 1000
      if (rep === 0) continue
      aggregateTps.push(results.reduce((s, r) => s + r.tokens, 0) / wall)
      ttftMs.push(...results.map((r) => r.ttftMs))
    }
    out[n] = { aggregateTps, ttftMs }
  }
  await context.dispose()
  await model.dispose()
  console.log(JSON.stringify({ levels: out }))
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
