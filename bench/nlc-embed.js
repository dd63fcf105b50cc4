// node-llama-cpp 3.22.1's embedding measurement for bench/run.js --suites embed: its
// embedding context takes one text per call (getEmbeddingFor), so the texts go one after another.
'use strict'
const path = require('node:path')
const { embedTexts } = require('./embed-texts')

async function main() {
  const [modelPath, threads, reps, count] = process.argv.slice(2)
  const texts = embedTexts(Number(count))
  const { getLlama } = await import(path.join(__dirname, 'node_modules', 'node-llama-cpp', 'dist', 'index.js'))
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: 'error' })
  const model = await llama.loadModel({ modelPath })
  const context = await model.createEmbeddingContext({ contextSize: 512, threads: Number(threads) })
  const textsPerSecond = []
  let length = 0
  for (let i = 0; i < Number(reps) + 1; i++) {
    const start = process.hrtime.bigint()
    for (const text of texts) length = (await context.getEmbeddingFor(text)).vector.length
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    if (i > 0) textsPerSecond.push(texts.length / seconds)
  }
  await context.dispose()
  await model.dispose()
  console.log(JSON.stringify({ textsPerSecond, length }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
