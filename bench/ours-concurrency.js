// napi-llama's side of the concurrency benchmark (bench/run.js): for each level N, N streams
// started together on one engine with `slots` slots; aggregate tokens/s over the wall time
// and each stream's time to first token. Prints one JSON line.
//   node bench/ours-concurrency.js MODEL TOKENS REPS THREADS SLOTS LEVELS PROMPTS_JSON [chat]
// `chat`: each prompt is a system and a user message (bench/chat-messages.js; the chat template
// applies) and the prompt cache is on, as requests through the persian-chat service are (the
// server suite).
'use strict'
const { monitorEventLoopDelay } = require('node:perf_hooks')
const { Engine } = require('..')
const { chatMessages } = require('./chat-messages')
const { levelRepetitions } = require('./level-repetitions')

async function timedStream(engine, prompt, tokens, start, chat, rep) {
  let first = null
  let count = 0
  // Chat mode: each repetition's prompts are new, as in bench/http-streams.js.
  const input = chat ? chatMessages(`[${rep}] ${prompt}`) : prompt
  for await (const chunk of engine.stream(input, { temperature: 0, maxTokens: tokens, cachePrompt: chat })) {
    if (first === null) first = performance.now()
    count += chunk.tokens
  }
  return { ttftMs: first - start, tokens: count }
}

async function main() {
  const [modelPath, tokens, reps, threads, slots, levels, promptsJson, mode] = process.argv.slice(2)
  const chat = mode === 'chat'
  const prompts = JSON.parse(promptsJson)
  const engine = await Engine.load({ modelPath, threads: Number(threads), contextSize: 1024, parallel: Number(slots) })
  const out = {}
  const loopResolutionMs = 1
  const loop = monitorEventLoopDelay({ resolution: loopResolutionMs })
  const levelList = levels.split(',').map(Number)
  // Event-loop delay at 8 streams, or at the most streams when 8 is not measured.
  const loopLevel = levelList.includes(8) ? 8 : Math.max(...levelList)
  for (const n of levelList) {
    const aggregateTps = []
    const ttftMs = []
    for (let rep = 0; rep < (chat ? levelRepetitions(n, Number(reps)) : Number(reps)) + 1; rep++) {
      if (rep === 1 && n === loopLevel) loop.enable()
      const start = performance.now()
      const results = await Promise.all(Array.from({ length: n }, (_, i) => timedStream(engine, prompts[i % prompts.length], Number(tokens), start, chat, `${n}.${rep}`)))
      const wall = (performance.now() - start) / 1000
      if (rep === 0) continue // warm-up
      aggregateTps.push(results.reduce((s, r) => s + r.tokens, 0) / wall)
      ttftMs.push(...results.map((r) => r.ttftMs))
    }
    out[n] = { aggregateTps, ttftMs }
  }
  loop.disable()
  await engine.unload()
  console.log(JSON.stringify({ levels: out, loopLevel, loopResolutionMs, loopDelayP99Ms: loop.percentile(99) / 1e6 }))
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
