// The remote benchmark's client (bench/run.js --suites remote): for each level N, N streamed
// completions started together against an OpenAI-compatible server, through either napi-llama's
// Engine.connect ("engine") or a plain fetch + eventsource-parser client ("fetch", the least a
// caller could write). Aggregate tokens/s over the wall time and each stream's time to first
// text. Prints one JSON line in the shape of ours-concurrency.js.
//   node bench/remote-client.js URL engine|fetch TOKENS REPS LEVELS PROMPTS_JSON
'use strict'
const { EventSourceParserStream } = require('eventsource-parser/stream')
const { Engine } = require('..')

async function viaEngine(engine, prompt, tokens, start) {
  let first = null
  let count = 0
  for await (const chunk of engine.stream(prompt, { temperature: 0, maxTokens: tokens, cachePrompt: false })) {
    if (first === null && chunk.text) first = performance.now()
    if (chunk.done) count = chunk.completionTokens
  }
  return { ttftMs: first - start, tokens: count }
}

async function viaFetch(url, prompt, tokens, start) {
  const res = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: tokens, temperature: 0, cache_prompt: false, stream: true, stream_options: { include_usage: true } }),
  })
  if (!res.ok || !res.body) throw new Error(`${url} answered ${res.status}`)
  let first = null
  let count = 0
  const events = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream())
  for await (const event of events) {
    if (event.data === '[DONE]') break
    const chunk = JSON.parse(event.data)
    if (first === null && chunk.choices?.[0]?.text) first = performance.now()
    if (chunk.usage) count = chunk.usage.completion_tokens
  }
  return { ttftMs: first - start, tokens: count }
}

async function main() {
  const [url, mode, tokens, reps, levels, promptsJson] = process.argv.slice(2)
  const prompts = JSON.parse(promptsJson)
  const engine = mode === 'engine' ? await Engine.connect({ baseURL: url }) : null
  const one = (prompt, start) => (engine ? viaEngine(engine, prompt, Number(tokens), start) : viaFetch(url, prompt, Number(tokens), start))
  const out = {}
  for (const n of levels.split(',').map(Number)) {
    const aggregateTps = []
    const ttftMs = []
    for (let rep = 0; rep < Number(reps) + 1; rep++) {
      const start = performance.now()
      const results = await Promise.all(Array.from({ length: n }, (_, i) => one(prompts[i % prompts.length], start)))
      const wall = performance.now() - start
      if (rep === 0) continue // warm-up
      aggregateTps.push((results.reduce((s, r) => s + r.tokens, 0) * 1000) / wall)
      ttftMs.push(...results.map((r) => r.ttftMs))
    }
    out[n] = { aggregateTps, ttftMs }
  }
  if (engine) await engine.unload()
  console.log(JSON.stringify({ levels: out }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
