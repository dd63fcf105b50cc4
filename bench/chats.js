// The chats benchmark's client (bench/run.js --suites chats): many conversations, few slots.
// Against any OpenAI-compatible server (the persian-chat service or llama-server), it plays
// CHATS chats of TURNS turns each. Each chat starts with a ~1,100-token history
// (bench/chat-workload.js); every turn sends the chat so far plus a new user message, and the
// reply comes back into the chat as an assistant message, as a chat client does.
//
// The turns go round-robin: every chat's turn 1, then every chat's turn 2, and so on, with
// CONCURRENCY requests in flight. With more chats than the server has slots, other chats use a
// slot between two turns of a chat, so a fast turn 2 needs a prompt cache that outlives the
// slot. TTFT is the time from sending the request to the first SSE delta with text (to the
// stream's end for an empty reply).
//   node bench/chats.js URL LANGUAGE CHATS TURNS CONCURRENCY MAX_TOKENS
// Prints one JSON line: { wallMs, requests: [{ chat, turn, ttftMs, totalMs, promptTokens,
// cachedTokens, completionTokens, reply }] }.
'use strict'

const { EventSourceParserStream } = require('eventsource-parser/stream')
const { history, userMessage } = require('./chat-workload')

/**
 * One streamed chat completion. Returns the reply, TTFT and the usage the server reports:
 * `usage` (stream_options.include_usage) on both servers; llama-server also sends `timings`
 * (`cache_n`: prompt tokens it did not evaluate), the service `prompt_tokens_details`.
 */
async function complete(url, messages, maxTokens) {
  const started = performance.now()
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      model: 'bench',
      messages,
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    }),
  })
  if (!res.ok || !res.body) throw new Error(`${url} answered ${res.status}: ${await res.text()}`)
  let ttftMs = null
  let reply = ''
  let usage = null
  let timings = null
  const events = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream())
  for await (const event of events) {
    if (event.data === '[DONE]') break
    const chunk = JSON.parse(event.data)
    if (chunk.error) throw new Error(`${url}: error event mid-stream: ${JSON.stringify(chunk.error)}`)
    const text = chunk.choices?.[0]?.delta?.content
    if (text) {
      if (ttftMs === null) ttftMs = performance.now() - started
      reply += text
    }
    if (chunk.usage) usage = chunk.usage
    if (chunk.timings) timings = chunk.timings
  }
  if (!usage) throw new Error(`${url} sent no usage (stream_options.include_usage)`)
  const cachedTokens = usage.prompt_tokens_details?.cached_tokens ?? timings?.cache_n ?? null
  const totalMs = performance.now() - started
  return {
    ttftMs: ttftMs ?? totalMs, // an empty reply (end of turn at once): its end is its first answer
    totalMs,
    promptTokens: usage.prompt_tokens,
    cachedTokens,
    completionTokens: usage.completion_tokens,
    reply,
  }
}

/** Every chat's turn 1, then every chat's turn 2, …: the order a pool of clients takes them in. */
function roundRobin(chats, turns) {
  const jobs = []
  for (let turn = 1; turn <= turns; turn++) for (let chat = 0; chat < chats; chat++) jobs.push({ chat, turn })
  return jobs
}

async function main() {
  const [url, language, chatsArg, turnsArg, concurrencyArg, maxTokensArg] = process.argv.slice(2)
  const [chats, turns, concurrency, maxTokens] = [chatsArg, turnsArg, concurrencyArg, maxTokensArg].map(Number)
  if (!url || !language || ![chats, turns, concurrency, maxTokens].every((n) => n > 0)) {
    throw new Error('usage: node bench/chats.js URL LANGUAGE CHATS TURNS CONCURRENCY MAX_TOKENS')
  }

  // Warm-up: first-use allocations on the server, with a chat that shares no prefix with the
  // measured ones (so it seeds no cache they could hit).
  await complete(url, [{ role: 'user', content: language === 'fa' ? 'سلام!' : 'Hello!' }], 4)

  const conversations = Array.from({ length: chats }, (_, chat) => ({ messages: history(chat, language), previousTurn: Promise.resolve() }))
  const jobs = roundRobin(chats, turns)
  const requests = []
  let next = 0

  async function playTurn({ chat, turn }) {
    const conversation = conversations[chat]
    const messages = [...conversation.messages, { role: 'user', content: userMessage(chat, turn, language) }]
    const result = await complete(url, messages, maxTokens)
    conversation.messages = [...messages, { role: 'assistant', content: result.reply }]
    requests.push({ chat, turn, ...result })
  }

  // A pool of CONCURRENCY clients taking the jobs in order. A chat's next turn may come up
  // while its previous one is still streaming (few chats, many clients); it waits for it.
  async function client() {
    while (next < jobs.length) {
      const job = jobs[next++]
      const conversation = conversations[job.chat]
      const turn = conversation.previousTurn.then(() => playTurn(job))
      conversation.previousTurn = turn
      await turn
    }
  }

  const started = performance.now()
  await Promise.all(Array.from({ length: concurrency }, client))
  const wallMs = performance.now() - started
  requests.sort((a, b) => a.turn - b.turn || a.chat - b.chat)
  console.log(JSON.stringify({ wallMs, requests }))
}

main().catch((e) => {
  console.error(e.stack || e.message)
  process.exit(1)
})
