// The server suite's HTTP client (bench/run.js --suites server): for each level N, N streamed
// chat completions started together against an OpenAI-compatible server (the persian-chat
// service or llama-server), read with fetch + eventsource-parser. Aggregate tokens/s over the
// wall time (completion tokens from each stream's usage) and each stream's time to first text.
// Prints one JSON line in the shape of ours-concurrency.js. Both servers keep their prompt cache
// on (their default); every repetition's prompts are new.
//   node bench/http-streams.js URL TOKENS REPS LEVELS PROMPTS_JSON
'use strict'
const { EventSourceParserStream } = require('eventsource-parser/stream')
const { chatMessages } = require('./chat-messages')
const { levelRepetitions } = require('./level-repetitions')

async function oneStream(url, prompt, tokens, start) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      messages: chatMessages(prompt),
      max_tokens: tokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  })
  if (!res.ok || !res.body) throw new Error(`${url} answered ${res.status}: ${await res.text()}`)
  let first = null
  let count = 0
  let chunks = 0
  const events = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream())
  for await (const event of events) {
    if (event.data === '[DONE]') break
    const chunk = JSON.parse(event.data)
    if (chunk.error) throw new Error(`${url} failed mid-stream: ${JSON.stringify(chunk.error)}`)
    if (chunk.choices?.[0]?.delta?.content) {
      if (first === null) first = performance.now()
      chunks++
    }
    if (chunk.usage) count = chunk.usage.completion_tokens
  }
  return { ttftMs: first - start, tokens: count, chunks }
}

async function main() {
  const [url, tokens, reps, levels, promptsJson] = process.argv.slice(2)
  const prompts = JSON.parse(promptsJson)
  const out = {}
  for (const n of levels.split(',').map(Number)) {
    const aggregateTps = []
    const ttftMs = []
    const chunksPerToken = []
    for (let rep = 0; rep < levelRepetitions(n, Number(reps)) + 1; rep++) {
      const start = performance.now()
      // Each repetition's prompts are new to the server (its own first words), as new chats
      // are: a prompt cache helps neither side beyond the chat template's first tokens.
      const results = await Promise.all(Array.from({ length: n }, (_, i) => oneStream(url, `[${n}.${rep}] ${prompts[i % prompts.length]}`, Number(tokens), start)))
      const wall = performance.now() - start
      if (rep === 0) continue // warm-up
      const total = results.reduce((s, r) => s + r.tokens, 0)
      aggregateTps.push((total * 1000) / wall)
      ttftMs.push(...results.map((r) => r.ttftMs))
      chunksPerToken.push(results.reduce((s, r) => s + r.chunks, 0) / Math.max(1, total))
    }
    out[n] = { aggregateTps, ttftMs, chunksPerToken }
  }
  console.log(JSON.stringify({ levels: out }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
