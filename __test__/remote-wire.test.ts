// What a remote engine does with replies a healthy llama-server never sends on cue: busy and
// loading statuses, HTML error pages, broken JSON and broken SSE, and the request bodies it
// builds for vLLM and plain OpenAI servers. A small scripted HTTP server plays the backend;
// everything else about the remote engine is tested against a real llama-server
// (remote.test.ts, pool.test.ts).
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Engine } from '../index'
import { collect, failure } from './helpers'

type Handler = (req: http.IncomingMessage, body: string, res: http.ServerResponse) => void

interface Scripted {
  url: string
  requests: Array<{ method: string; url: string; body: any; headers: http.IncomingHttpHeaders }>
  /** What the next completion request gets; models and health are answered by `owner`. */
  next: Handler[]
  close(): Promise<void>
}

function completion(text: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({
    choices: [{ index: 0, message: { role: 'assistant', content: text }, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 2, prompt_tokens_details: { cached_tokens: 3 } },
    ...extra,
  })
}

async function scripted(owner: string): Promise<Scripted> {
  const state: Scripted = { url: '', requests: [], next: [], close: async () => undefined }
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (d) => (body += d))
    req.on('end', () => {
      let parsed: unknown = null
      try {
        parsed = body ? JSON.parse(body) : null
      } catch {
        parsed = body
      }
      state.requests.push({ method: req.method!, url: req.url!, body: parsed, headers: req.headers })
      if (req.url === '/v1/models') {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ object: 'list', data: [{ id: 'served-model', object: 'model', owned_by: owner, max_model_len: 4096 }] }))
        return
      }
      if (req.url === '/health') {
        res.end('{}')
        return
      }
      const handler = state.next.shift()
      if (handler) handler(req, body, res)
      else {
        res.setHeader('content-type', 'application/json')
        res.end(completion('fine'))
      }
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  state.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  state.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections()
      server.close(() => resolve())
    })
  return state
}

const reply = (status: number, body: string, headers: Record<string, string> = {}): Handler => (_req, _body, res) => {
  res.writeHead(status, { 'content-type': 'application/json', ...headers })
  res.end(body)
}

const sse = (events: string[], end = true): Handler => (_req, _body, res) => {
  res.writeHead(200, { 'content-type': 'text/event-stream' })
  for (const e of events) res.write(`data: ${e}\n\n`)
  if (end) res.end()
  // The connection drops once what was written has gone out.
  else setTimeout(() => res.destroy(), 100)
}

const delta = (content: string, finish: string | null = null) => JSON.stringify({ choices: [{ index: 0, delta: { content }, finish_reason: finish }] })

describe('an OpenAI-compatible server of kind openai', () => {
  let backend: Scripted
  beforeAll(async () => {
    backend = await scripted('someone')
  })
  afterAll(() => backend.close())

  test('the kind is detected from /v1/models; the model id is its first entry', async () => {
    const engine = await Engine.connect({ baseURL: `${backend.url}/v1/` })
    expect(engine.health()).toMatchObject({ status: 'ok', kind: 'openai', modelName: 'served-model', contextSize: 4096 })
    const g = await engine.generate([{ role: 'user', content: 'hi' }], { maxTokens: 9, temperature: 0.5, seed: 7, stop: ['x'], jsonSchema: { type: 'object' } })
    expect(g).toMatchObject({ text: 'fine', promptTokens: 5, completionTokens: 2, cachedTokens: 3, finishReason: 'stop' })
    const sent = backend.requests[backend.requests.length - 1]
    expect(sent.url).toBe('/v1/chat/completions')
    expect(sent.body).toEqual({
      model: 'served-model',
      messages: [{ role: 'user', content: 'hi' }],
      max_tokens: 9,
      temperature: 0.5,
      seed: 7,
      stop: ['x'],
      response_format: { type: 'json_schema', json_schema: { name: 'output', schema: { type: 'object' }, strict: true } },
    })
    await engine.unload()
  })

  test('options it has no field for are INVALID_ARGUMENT, not silently dropped; it has no tokenizer', async () => {
    const engine = await Engine.connect({ baseURL: backend.url })
    for (const options of [{ topK: 5 }, { minP: 0.1 }, { repeatPenalty: 1.1 }, { grammar: 'root ::= "a"' }]) {
      const err = await failure(engine.generate('hi', options))
      expect(err.code).toBe('INVALID_ARGUMENT')
      expect(err.message).toContain(Object.keys(options)[0])
    }
    const t = await failure(engine.tokenize('hi'))
    expect(t.code).toBe('INVALID_ARGUMENT')
    expect(t.message).toMatch(/not offered by backend/)
    expect((await engine.generate('hi')).text).toBe('fine')
    await engine.unload()
  })

  test('429 is QUEUE_FULL with its Retry-After; 503 is MODEL_NOT_LOADED while loading, else QUEUE_FULL', async () => {
    const engine = await Engine.connect({ baseURL: backend.url })
    backend.next.push(reply(429, '{"error":{"message":"slow down"}}', { 'retry-after': '2' }))
    const busy = (await failure(engine.generate('hi'))) as { code?: string; retryAfterMs?: number }
    expect(busy).toMatchObject({ code: 'QUEUE_FULL', retryAfterMs: 2000 })
    backend.next.push(reply(503, '{"error":{"code":503,"message":"Loading model","type":"unavailable_error"}}'))
    expect((await failure(engine.generate('hi'))).code).toBe('MODEL_NOT_LOADED')
    backend.next.push(reply(503, '{"error":{"message":"no slot available"}}'))
    expect((await failure(engine.generate('hi'))).code).toBe('QUEUE_FULL')
    backend.next.push(reply(400, '{"error":{"message":"This model\'s maximum context length is 4096 tokens. However, you requested 5000 tokens"}}'))
    expect((await failure(engine.generate('hi'))).code).toBe('CONTEXT_OVERFLOW')
    backend.next.push(reply(400, '{"error":{"message":"temperature must be positive"}}'))
    expect((await failure(engine.generate('hi'))).code).toBe('INVALID_ARGUMENT')
    await engine.unload()
  })

  test('a malformed reply is INTERNAL naming the backend', async () => {
    const engine = await Engine.connect({ baseURL: backend.url })
    backend.next.push(reply(500, '<html><body>Bad Gateway</body></html>', { 'content-type': 'text/html' }))
    backend.next.push(reply(200, '{"choices": [ nope'))
    backend.next.push(reply(200, '{"object":"chat.completion"}'))
    for (let i = 0; i < 3; i++) {
      const err = await failure(engine.generate('hi'))
      expect(err.code).toBe('INTERNAL')
      expect(err.message).toContain(backend.url)
    }
    backend.next.push(sse([delta('a'), 'this is not json']))
    const s = await failure(collect(engine.stream('hi')))
    expect(s.code).toBe('INTERNAL')
    expect(s.message).toContain(backend.url)
    expect((await engine.generate('hi')).text).toBe('fine')
    await engine.unload()
  })

  test('a stream that ends early errors UNAVAILABLE after the text it delivered; never ends as if complete', async () => {
    const engine = await Engine.connect({ baseURL: backend.url })
    for (const end of [true, false]) {
      backend.next.push(sse([delta('Hel'), delta('lo')], end))
      const seen: string[] = []
      const err = await failure(
        (async () => {
          for await (const chunk of engine.stream('hi')) seen.push(chunk.text)
        })(),
      )
      expect(err.code).toBe('UNAVAILABLE')
      expect(seen.join('')).toBe('Hello')
    }
    backend.next.push(sse([delta('Hi'), delta('!', 'length'), JSON.stringify({ choices: [], usage: { prompt_tokens: 4, completion_tokens: 2 } }), '[DONE]']))
    const { text, final } = await collect(engine.stream('hi'))
    expect(text).toBe('Hi!')
    expect(final).toMatchObject({ finishReason: 'length', promptTokens: 4, completionTokens: 2 })
    await engine.unload()
  })

  test('streamIntervalMs: pieces sooner than the interval join the next; a timer sends them while the server is silent; an error comes after them', async () => {
    const engine = await Engine.connect({ baseURL: backend.url })
    // All at once: the first piece alone, the rest joined before the final chunk.
    backend.next.push(sse([delta('a'), delta('b'), delta('c'), delta('d', 'stop'), '[DONE]']))
    const all = await collect(engine.stream('hi', { streamIntervalMs: 60_000 }))
    expect(all.chunks.filter((c) => !c.done).map((c) => [c.text, c.tokens])).toEqual([
      ['a', 1],
      ['bcd', 3],
    ])
    // The server goes silent with a piece held: only the timer can deliver 'y' before 'z' is sent.
    let resume!: () => void
    const resumed = new Promise<void>((r) => (resume = r))
    backend.next.push((_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      res.write(`data: ${delta('x')}\n\ndata: ${delta('y')}\n\n`)
      void resumed.then(() => res.end(`data: ${delta('z', 'stop')}\n\ndata: [DONE]\n\n`))
    })
    const pieces: string[] = []
    for await (const c of engine.stream('hi', { streamIntervalMs: 20 })) {
      if (!c.done) pieces.push(c.text)
      if (pieces.join('') === 'xy') resume()
    }
    expect(pieces).toEqual(['x', 'y', 'z'])
    // A stream cut after held text: the text first, then the error.
    backend.next.push(sse([delta('Hel'), delta('lo')], false))
    const seen: string[] = []
    const err = await failure(
      (async () => {
        for await (const chunk of engine.stream('hi', { streamIntervalMs: 60_000 })) seen.push(chunk.text)
      })(),
    )
    expect(err.code).toBe('UNAVAILABLE')
    expect(seen.join('')).toBe('Hello')
    await engine.unload()
  })

  test('a pool honours Retry-After: the request waits, then completes', async () => {
    const engine = await Engine.connect({ baseURL: backend.url })
    const pool = Engine.pool([engine], { probeIntervalMs: 60_000 })
    backend.next.push(reply(429, '{"error":{"message":"busy"}}', { 'retry-after': '0.4' }))
    const started = Date.now()
    const g = await pool.generate('hi', { timeoutMs: 5000 })
    expect(g.text).toBe('fine')
    expect(Date.now() - started).toBeGreaterThanOrEqual(380)
    expect(pool.metrics().retries).toBe(1)
    // A Retry-After beyond the deadline is not waited for.
    backend.next.push(reply(429, '{"error":{"message":"busy"}}', { 'retry-after': '30' }))
    expect((await failure(pool.generate('hi', { timeoutMs: 2000 }))).code).toBe('QUEUE_FULL')
    await pool.unload()
  })

  test('a pool: an abort during the Retry-After wait ends the request at once, without another attempt', async () => {
    const pool = Engine.pool([await Engine.connect({ baseURL: backend.url })], { probeIntervalMs: 60_000 })
    backend.next.push(reply(429, '{"error":{"message":"busy"}}', { 'retry-after': '5' }))
    const posts = () => backend.requests.filter((r) => r.method === 'POST').length
    const before = posts()
    const controller = new AbortController()
    setTimeout(() => controller.abort(), 300)
    const started = Date.now()
    expect((await failure(pool.generate('hi', { signal: controller.signal }))).code).toBe('ABORTED')
    expect(Date.now() - started).toBeLessThan(1500)
    await new Promise((r) => setTimeout(r, 200))
    expect(posts()).toBe(before + 1)
    await pool.unload()
  })

  test('a pool: a signal that throws is INVALID_ARGUMENT and holds no capacity', async () => {
    const pool = Engine.pool([await Engine.connect({ baseURL: backend.url, maxConcurrency: 1 })], { probeIntervalMs: 60_000 })
    const hostile = {
      aborted: false,
      addEventListener() {
        throw new Error('nope')
      },
      removeEventListener() {
        throw new Error('nope')
      },
    } as unknown as AbortSignal
    for (let i = 0; i < 3; i++) expect((await failure(pool.generate('hi', { signal: hostile }))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(collect(pool.stream('hi', { signal: hostile })))).code).toBe('INVALID_ARGUMENT')
    expect((await pool.generate('hi', { timeoutMs: 5000 })).text).toBe('fine')
    expect(pool.health().backends[0].active).toBe(0)
    await pool.unload()
  })

  test('a malformed baseURL is INVALID_ARGUMENT without echoing its credentials', async () => {
    const err = await failure(Engine.connect('http://:sk-SECRET@host:99999'))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).not.toContain('sk-SECRET')
  })
})

test('vLLM: its field names for the samplers and grammar, and its tokenizer', async () => {
  const backend = await scripted('vllm')
  try {
    const engine = await Engine.connect({ baseURL: backend.url, apiKey: 'k-1', headers: { 'X-Team': 'persian' } })
    expect(engine.health().kind).toBe('vllm')
    await engine.generate('hi', { topK: 5, minP: 0.1, repeatPenalty: 1.2, grammar: 'root ::= "a"', cachePrompt: true, maxTokens: 4 })
    const sent = backend.requests[backend.requests.length - 1]
    expect(sent.url).toBe('/v1/completions')
    expect(sent.headers.authorization).toBe('Bearer k-1')
    expect(sent.headers['x-team']).toBe('persian')
    expect(sent.body).toEqual({ model: 'served-model', prompt: 'hi', max_tokens: 4, top_k: 5, min_p: 0.1, repetition_penalty: 1.2, guided_grammar: 'root ::= "a"' })
    backend.next.push(reply(200, '{"count": 3, "tokens": [1, 2, 3], "max_model_len": 4096}'))
    expect(await engine.countTokens([{ role: 'user', content: 'hi' }])).toBe(3)
    expect(backend.requests[backend.requests.length - 1].body).toEqual({ model: 'served-model', messages: [{ role: 'user', content: 'hi' }] })
    await engine.unload()
  } finally {
    await backend.close()
  }
})
