// One engine's measurement for bench/run.js: decode tokens/s and TTFT through stream(), and
// the event loop's delay while streaming. Prints one JSON line.
'use strict'
const { monitorEventLoopDelay } = require('node:perf_hooks')
const llama = require('..')

async function main() {
  const [modelPath, tokens, reps, threads, prompt, slice] = process.argv.slice(2)
  // 'slice-on': responsiveEventLoop (eventloop suite); otherwise the default.
  await llama.initialize({ modelPath, threads: Number(threads), contextSize: 1024, responsiveEventLoop: slice === 'slice-on' })
  const tps = []
  const ttft = []
  const generated = []
  const loop = monitorEventLoopDelay({ resolution: 1 })
  for (let i = 0; i < Number(reps) + 1; i++) {
    if (i === 1) loop.enable()
    const start = process.hrtime.bigint()
    let first = null
    let last = null
    let count = 0
    // cachePrompt: false: every repetition evaluates the whole prompt, as the baselines do.
    for await (const chunk of llama.stream(prompt, { temperature: 0, maxTokens: Number(tokens), cachePrompt: false })) {
      if (chunk.done) break
      const now = process.hrtime.bigint()
      if (first === null) first = now
      last = now
      count += chunk.tokens
    }
    if (i === 0) continue // warm-up
    ttft.push(Number(first - start) / 1e6)
    tps.push((count - 1) / (Number(last - first) / 1e9))
    generated.push(count)
  }
  loop.disable()
  await llama.shutdown()
  console.log(JSON.stringify({ decodeTps: tps, ttftMs: ttft, tokens: generated, loopDelayP99Ms: loop.percentile(99) / 1e6, loopDelayMaxMs: loop.max / 1e6 }))
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
