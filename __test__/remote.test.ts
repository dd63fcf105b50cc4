// Engine.connect against a real llama-server (llama.cpp's own, on loopback) serving the same
// model as a local engine: the same API, the same Generation fields, the same error codes.
import { Engine } from '../index'
import type { RemoteEngine } from '../index'
import { SMOLLM2, LONG_PROMPT, collect, failure } from './helpers'
import { busySlots, freePort, startLlamaServer } from './llama-server'
import type { LlamaServer } from './llama-server'

const CHAT = [
  { role: 'system' as const, content: 'You are a helpful assistant.' },
  { role: 'user' as const, content: 'What is the capital of France?' },
]
// No end-of-text token can match: generation runs to maxTokens, however the model feels.
const NEVER_ENDS = 'root ::= [a-z ]+'

let server: LlamaServer
let remote: RemoteEngine
let local: Engine

beforeAll(async () => {
  server = await startLlamaServer(SMOLLM2, ['-c', '4096'])
  remote = await Engine.connect({ baseURL: server.url })
  local = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 2048, parallel: 2 })
})

afterAll(async () => {
  await remote?.unload()
  await local?.unload()
  await server?.stop()
})

test('connect learns the server: kind, model, context and slots', () => {
  expect(remote.health()).toMatchObject({ status: 'ok', kind: 'llama-server', slotsTotal: 2, contextSize: 2048, lastError: null })
  expect(remote.info.contextSize).toBe(2048)
  expect(remote.info.parallel).toBe(2)
  expect(remote.info.vocabSize).toBe(local.info.vocabSize)
})

test('a greedy chat through llama-server and through a local engine', async () => {
  // The prompt renders identically (same template, same token count). The texts may part
  // after some tokens: llama.cpp's results depend on batch shapes, which differ between the
  // two servers, so the test holds them to the same finishReason, not the same words.
  // (llama-server's completion_tokens also counts the end-of-text token; ours does not.)
  const options = { maxTokens: 12, temperature: 0 }
  const [there, here] = [await remote.generate(CHAT, options), await local.generate(CHAT, options)]
  expect(there.promptTokens).toBe(here.promptTokens)
  expect(there.finishReason).toBe(here.finishReason)
  expect(there.text.length).toBeGreaterThan(0)
  expect(there.timings.ttftMs).toBeGreaterThan(0)
  expect(typeof there.requestId).toBe('string')
})

test('a string prompt goes to /v1/completions; a stop string ends it and stays out', async () => {
  const g = await remote.generate('Count:', { maxTokens: 20, temperature: 0, grammar: 'root ::= " a b c d"', stop: [' c'] })
  expect(g.text).toBe(' a b')
  expect(g.finishReason).toBe('stop')
})

test('stream: chunks add up to the generation, the last one carries its fields', async () => {
  const { chunks, text, final } = await collect(remote.stream(CHAT, { maxTokens: 16, temperature: 0, requestId: 'chat-7' }))
  expect(final).toBeDefined()
  expect(text).toBe(final!.text)
  expect(final!.requestId).toBe('chat-7')
  expect(chunks.reduce((n, c) => n + c.tokens, 0)).toBe(final!.completionTokens)
})

test('turn 2 of a chat reuses the server prompt cache (cachedTokens)', async () => {
  const first = await remote.generate(CHAT, { maxTokens: 8, temperature: 0 })
  const second = await remote.generate([...CHAT, { role: 'assistant', content: first.text }, { role: 'user', content: 'And of Italy?' }], {
    maxTokens: 8,
    temperature: 0,
  })
  expect(second.cachedTokens).toBeGreaterThan(0)
})

test('tokenize, detokenize and countTokens agree with the local engine', async () => {
  const text = 'Hello, world! سلام'
  expect(Array.from(await remote.tokenize(text))).toEqual(Array.from(local.tokenize(text)))
  expect(await remote.detokenize(await remote.tokenize(text))).toBe(text)
  expect(await remote.countTokens(CHAT)).toBe(local.countTokens(CHAT))
})

test('jsonSchema and grammar constrain the reply', async () => {
  const g = await remote.generate(CHAT, { maxTokens: 40, temperature: 0, jsonSchema: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } })
  expect(typeof JSON.parse(g.text).city).toBe('string')
  const yes = await remote.generate(CHAT, { maxTokens: 5, grammar: 'root ::= "yes"' })
  expect(yes.text).toBe('yes')
})

test('a prompt over the context is CONTEXT_OVERFLOW with both counts; drop-oldest makes a chat fit', async () => {
  const err = await failure(remote.generate('word '.repeat(3000), { maxTokens: 4 }))
  expect(err.code).toBe('CONTEXT_OVERFLOW')
  expect(err.message).toMatch(/2048/)
  const long = 'tell me more about it '.repeat(150)
  const history = [
    { role: 'system' as const, content: 'Be brief.' },
    ...Array.from({ length: 6 }, (_, i) => [
      { role: 'user' as const, content: `${i}: ${long}` },
      { role: 'assistant' as const, content: 'ok' },
    ]).flat(),
    { role: 'user' as const, content: 'Say hi.' },
  ]
  expect((await failure(remote.generate(history, { maxTokens: 4 }))).code).toBe('CONTEXT_OVERFLOW')
  const g = await remote.generate(history, { maxTokens: 4, contextOverflow: 'drop-oldest' })
  expect(g.droppedMessages).toBeGreaterThan(0)
})

test('bad options are INVALID_ARGUMENT before anything is sent, and the next request works', async () => {
  expect((await failure(remote.generate(CHAT, { maxTokens: -1 } as never))).code).toBe('INVALID_ARGUMENT')
  expect((await failure(remote.generate(CHAT, { max_tokens: 3 } as never))).code).toBe('INVALID_ARGUMENT')
  expect((await failure(remote.generate([], {}))).code).toBe('INVALID_ARGUMENT')
  expect((await failure(Engine.connect({ baseURL: 'ftp://x' }))).code).toBe('INVALID_ARGUMENT')
  expect((await failure(Engine.connect({ baseURL: server.url, kind: 'tgi' as never }))).code).toBe('INVALID_ARGUMENT')
  expect((await remote.generate(CHAT, { maxTokens: 2 })).completionTokens).toBeGreaterThan(0)
})

test('nothing listening: UNAVAILABLE within connectTimeoutMs, for connect and for requests', async () => {
  const port = await freePort()
  const started = Date.now()
  const dead = await Engine.connect({ baseURL: `http://127.0.0.1:${port}` })
  expect(dead.health()).toMatchObject({ status: 'error' })
  expect(dead.health().lastError).toMatch(/refused/)
  const g = await failure(dead.generate(CHAT))
  expect(g.code).toBe('UNAVAILABLE')
  expect(g.message).toContain(`127.0.0.1:${port}`)
  const s = await failure(collect(dead.stream(CHAT)))
  expect(s.code).toBe('UNAVAILABLE')
  expect(Date.now() - started).toBeLessThan(2000)
  await dead.unload()
})

test('an AbortSignal aborts the HTTP request: ABORTED, and the server frees its slot within a second', async () => {
  const controller = new AbortController()
  const stream = remote.stream(LONG_PROMPT, { maxTokens: 1500, grammar: NEVER_ENDS, signal: controller.signal })
  const reader = stream.getReader()
  await reader.read()
  expect(await busySlots(server)).toBe(1)
  controller.abort()
  expect((await failure(reader.read())).code).toBe('ABORTED')
  const deadline = Date.now() + 1000
  while ((await busySlots(server)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  expect(await busySlots(server)).toBe(0)
})

test('breaking out of for await frees the server slot too', async () => {
  for await (const chunk of remote.stream(LONG_PROMPT, { maxTokens: 1500, grammar: NEVER_ENDS })) {
    if (!chunk.done) break
  }
  const deadline = Date.now() + 1000
  while ((await busySlots(server)) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
  expect(await busySlots(server)).toBe(0)
})

describe('a server that stops answering', () => {
  let hung: LlamaServer
  beforeAll(async () => {
    hung = await startLlamaServer(SMOLLM2)
  })
  afterAll(async () => {
    await hung?.stop()
  })

  test('a deadline is TIMEOUT (the server is stopped, so it cannot be fast enough)', async () => {
    const engine = await Engine.connect({ baseURL: hung.url })
    hung.signal('SIGSTOP')
    try {
      const started = Date.now()
      expect((await failure(engine.generate(CHAT, { timeoutMs: 300 }))).code).toBe('TIMEOUT')
      expect((await failure(collect(engine.stream(CHAT, { timeoutMs: 300 })))).code).toBe('TIMEOUT')
      expect(Date.now() - started).toBeLessThan(3000)
    } finally {
      hung.signal('SIGCONT')
    }
    expect((await engine.generate(CHAT, { maxTokens: 2 })).completionTokens).toBeGreaterThan(0)
    await engine.unload()
  })

  test('a stream cut part way (SIGKILL) is UNAVAILABLE after the text already delivered', async () => {
    const engine = await Engine.connect({ baseURL: hung.url })
    const reader = engine.stream(LONG_PROMPT, { maxTokens: 1500, grammar: NEVER_ENDS }).getReader()
    const first = await reader.read()
    expect(first.done).toBe(false)
    hung.signal('SIGKILL')
    let err: { code?: string } | null = null
    try {
      for (;;) {
        const next = await reader.read()
        if (next.done) break
        expect(next.value.done).toBe(false)
      }
    } catch (e) {
      err = e as { code?: string }
    }
    expect(err?.code).toBe('UNAVAILABLE')
    expect(engine.health().status).toBe('error')
    await engine.unload()
  })
})

test('an API key reaches the server and never appears in errors or health()', async () => {
  const keyed = await startLlamaServer(SMOLLM2, ['--api-key', 'sekrit-key-123'])
  try {
    const good = await Engine.connect({ baseURL: keyed.url, apiKey: 'sekrit-key-123' })
    expect((await good.generate(CHAT, { maxTokens: 2 })).completionTokens).toBeGreaterThan(0)
    const bad = await Engine.connect({ baseURL: keyed.url, apiKey: 'wrong-key-456' })
    const err = await failure(bad.generate(CHAT, { maxTokens: 2 }))
    expect(err.code).toBe('UNAVAILABLE')
    expect(err.message).toMatch(/apiKey/)
    expect(JSON.stringify(bad.health()) + err.message).not.toContain('wrong-key-456')
    // A key in the URL is used as the key, and the URL is shown without it.
    const inUrl = await Engine.connect({ baseURL: `http://user:sekrit-key-123@127.0.0.1:${keyed.port}` })
    expect((await inUrl.generate(CHAT, { maxTokens: 2 })).completionTokens).toBeGreaterThan(0)
    expect(JSON.stringify(inUrl.health())).not.toContain('sekrit')
    await Promise.all([good.unload(), bad.unload(), inUrl.unload()])
  } finally {
    await keyed.stop()
  }
})

test('metrics count requests on this side of the wire; unload rejects what follows', async () => {
  const engine = await Engine.connect({ baseURL: server.url })
  await engine.generate(CHAT, { maxTokens: 3 })
  const m = engine.metrics()
  expect(m.requestsTotal).toBe(1)
  expect(m.requestsCompleted).toBe(1)
  expect(m.completionTokensTotal).toBeGreaterThan(0)
  await engine.unload()
  expect(engine.health().status).toBe('unloaded')
  expect((await failure(engine.generate(CHAT))).code).toBe('MODEL_NOT_LOADED')
  await engine.unload()
})
