// napi-llama's embedding measurement for bench/run.js --suites embed: texts per second over
// `count` texts, either all in one embed() call (batched: as many per decode as fit) or one
// text per call, one after another (what a caller without batching gets).
'use strict'
const { Engine } = require('..')
const { embedTexts } = require('./embed-texts')

async function main() {
  const [modelPath, threads, reps, mode, count] = process.argv.slice(2)
  const texts = embedTexts(Number(count))
  const engine = await Engine.load({ modelPath, threads: Number(threads), contextSize: 512, embeddings: true, pooling: 'mean' })
  const textsPerSecond = []
  for (let i = 0; i < Number(reps) + 1; i++) {
    const start = process.hrtime.bigint()
    if (mode === 'batched') await engine.embed(texts)
    else for (const text of texts) await engine.embed([text])
    const seconds = Number(process.hrtime.bigint() - start) / 1e9
    if (i > 0) textsPerSecond.push(texts.length / seconds)
  }
  await engine.unload()
  console.log(JSON.stringify({ textsPerSecond }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
