// Fair under load, against the real service and model over real sockets: one client cannot take
// every slot and the queue; a reader that stops reading is dropped and its slot freed; a queued
// stream gets keep-alive comments; Node's server limits cut off slow, idle and surplus
// connections.
import fs from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'
import request from 'supertest'
import { createApp } from '../src/app'
import { createHttpServer } from '../src/http-server'
import { LlmService } from '../src/llm'
import { type TestService, parseSse, startTestService, testConfig, waitFor } from './helpers'

interface Reply {
  status: number
  body: string
}

/** A chat request over a real socket, from a chosen loopback address (a distinct client IP). */
function post(url: string, body: object, options: { from?: string; signal?: AbortSignal; headers?: Record<string, string> } = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body))
    const req = http.request(`${url}/v1/chat/completions`, {
      method: 'POST',
      localAddress: options.from,
      signal: options.signal,
      headers: { 'Content-Type': 'application/json', 'Content-Length': payload.length, ...options.headers },
    })
    req.on('response', (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }))
      res.on('error', () => resolve({ status: res.statusCode ?? 0, body: text }))
    })
    req.on('error', reject)
    req.end(payload)
  })
}

/** A raw connection; `closed` resolves with everything it received once the server closes it. */
function rawConnection(url: string): { socket: net.Socket; closed: Promise<string> } {
  const socket = net.connect(Number(new URL(url).port), '127.0.0.1')
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (d: string) => (received += d))
  socket.on('error', () => undefined)
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(received)))
  return { socket, closed }
}

const LONG = { messages: [{ role: 'user', content: 'یک داستان خیلی بلند بنویس.' }], stream: true }

describe('per-client cap on running requests', () => {
  let service: TestService
  beforeAll(async () => {
    // Every decode step takes 20 ms more (test-only fault): a reply of hundreds of tokens holds
    // its slot for seconds however fast the machine is.
    service = await startTestService({
      LLM_PARALLEL: '2',
      LLM_MAX_QUEUE: '2',
      LLM_MAX_TOKENS: '400',
      MAX_INFLIGHT_PER_CLIENT: '2',
      NAPI_LLAMA_FAULTS: 'step:20',
    })
  })
  afterAll(() => service.close())

  test('a client holding every slot cannot also fill the queue: a second client is still served', async () => {
    const hog = new AbortController()
    const held = [post(service.url, LONG, { from: '127.0.0.1', signal: hog.signal }), post(service.url, LONG, { from: '127.0.0.1', signal: hog.signal })]
    for (const r of held) r.catch(() => undefined)
    await waitFor(() => service.llm.metrics()!.requestsActive === 2, 10_000, 'the first client to take both slots')

    // Its next requests are refused before they reach the engine's queue.
    for (let i = 0; i < 3; i++) {
      const refused = await post(service.url, LONG, { from: '127.0.0.1' })
      expect(refused.status).toBe(429)
      expect(JSON.parse(refused.body).error).toMatchObject({ code: 'too_many_concurrent_requests', type: 'rate_limit_error' })
    }
    expect(service.llm.metrics()!.requestsQueued).toBe(0)

    // Another client (another IP) finds a queue place and is served once a slot frees.
    const other = post(service.url, { messages: [{ role: 'user', content: 'سلام' }], max_tokens: 4 }, { from: '127.0.0.2' })
    await waitFor(() => service.llm.metrics()!.requestsQueued === 1, 10_000, 'the second client to queue')
    hog.abort()
    const served = await other
    expect(served.status).toBe(200)
    expect(JSON.parse(served.body).choices[0].message.content).toEqual(expect.any(String))

    const metrics = await request(service.app).get('/metrics')
    expect(metrics.text).toMatch(/^http_client_concurrency_rejections_total\{client="anonymous"\} 3$/m)
    // Once its requests are over, the first client may send again.
    await waitFor(() => service.llm.metrics()!.requestsActive === 0, 10_000, 'the slots to be freed')
    expect((await post(service.url, { messages: [{ role: 'user', content: 'سلام' }], max_tokens: 4 }, { from: '127.0.0.1' })).status).toBe(200)
  })
})

describe('per-key cap', () => {
  // Replies come from the one default engine: this suite's service starts after the one above stopped.
  test('with keys, the cap is per key, whatever the IP', async () => {
    const keyed = await startTestService({ API_KEYS: 'alice:ka,bob:kb', MAX_INFLIGHT_PER_CLIENT: '1', LLM_MAX_TOKENS: '400', NAPI_LLAMA_FAULTS: 'step:20' })
    try {
      const hog = new AbortController()
      const alice = { Authorization: 'Bearer ka' }
      const held = post(keyed.url, LONG, { from: '127.0.0.1', signal: hog.signal, headers: alice })
      held.catch(() => undefined)
      await waitFor(() => keyed.llm.metrics()!.requestsActive === 1, 10_000, 'alice to take a slot')
      expect((await post(keyed.url, LONG, { from: '127.0.0.3', headers: alice })).status).toBe(429)
      const bob = await post(keyed.url, { messages: [{ role: 'user', content: 'سلام' }], max_tokens: 4 }, { from: '127.0.0.1', headers: { Authorization: 'Bearer kb' } })
      expect(bob.status).toBe(200)
      hog.abort()
      const metrics = await request(keyed.app).get('/metrics').set(alice)
      expect(metrics.text).toMatch(/^http_client_concurrency_rejections_total\{client="alice"\} 1$/m)
    } finally {
      await keyed.close()
    }
  })
})

describe('a reader that stops reading', () => {
  // Over loopback TCP the kernel buffers megabytes before a writer feels any backpressure; a
  // Unix socket buffers far less, so a reply of a few hundred tokens fills it. The service's
  // code path is the same: a write the socket does not take, then the deadline.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'persian-chat-slow-'))
  const socketPath = path.join(dir, 'http.sock')
  let llm: LlmService
  let server: http.Server
  let metrics: ReturnType<typeof createApp>['metrics']

  beforeAll(async () => {
    // Greedy without a repeat penalty: this model then writes until the cap.
    const config = testConfig({ LLM_PARALLEL: '1', LLM_MAX_TOKENS: '2000', LLM_CONTEXT_SIZE: '4096', LLM_REPEAT_PENALTY: '1', SLOW_READER_TIMEOUT_MS: '300' })
    llm = new LlmService(config)
    await llm.start()
    const created = createApp(config, llm)
    metrics = created.metrics
    server = createHttpServer(config, created.app).server
    await new Promise<void>((resolve) => server.listen(socketPath, resolve))
  })
  afterAll(async () => {
    server.closeAllConnections()
    await new Promise<void>((resolve) => server.close(() => resolve()))
    await llm.stop()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  function send(body: object, stopReading: boolean): { req: http.ClientRequest; reply: Promise<{ status: number; text: string }> } {
    const payload = Buffer.from(JSON.stringify(body))
    let req!: http.ClientRequest
    const reply = new Promise<{ status: number; text: string }>((resolve, reject) => {
      req = http.request({ socketPath, path: '/v1/chat/completions', method: 'POST', headers: { Host: 'localhost', 'Content-Type': 'application/json', 'Content-Length': payload.length } })
      req.on('response', (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (d: string) => {
          text += d
          if (stopReading) res.pause() // and never resume
        })
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      })
      req.on('error', reject)
      req.end(payload)
    })
    return { req, reply }
  }

  test('is dropped after SLOW_READER_TIMEOUT_MS: its generation is cancelled and the slot serves the next client', async () => {
    const before = llm.metrics()!
    const stalled = send({ messages: [{ role: 'user', content: 'Count from 1 to 1000, separated by commas.' }], stream: true, temperature: 0 }, true)
    await waitFor(() => llm.metrics()!.requestsAborted === before.requestsAborted + 1, 60_000, 'the stalled stream to be cancelled')
    await waitFor(() => llm.metrics()!.requestsActive === 0, 10_000, 'the slot to be freed')
    expect(llm.metrics()!.requestsCompleted).toBe(before.requestsCompleted)
    const text = await metrics.render()
    expect(text).toMatch(/^chat_slow_readers_dropped_total\{route="\/v1\/chat\/completions"\} 1$/m)
    expect(text).toMatch(/^chat_client_disconnects_total\{route="\/v1\/chat\/completions"\} 1$/m)

    const next = await send({ messages: [{ role: 'user', content: 'سلام' }], max_tokens: 4, stream: true }, false).reply
    expect(next.status).toBe(200)
    expect(next.text.trimEnd().endsWith('data: [DONE]')).toBe(true)
    // The stalled client never reads its end: it is left to hang up itself.
    stalled.reply.catch(() => undefined)
    stalled.req.destroy()
  })
})

describe('SSE keep-alive while queued', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService({ LLM_PARALLEL: '1', LLM_MAX_TOKENS: '400', SSE_KEEPALIVE_MS: '100', NAPI_LLAMA_FAULTS: 'step:20' })
  })
  afterAll(() => service.close())

  test.each([
    ['/v1/chat/completions', { messages: [{ role: 'user', content: 'سلام' }], max_tokens: 4, stream: true }],
    ['/api/chat', { message: 'سلام', stream: true }],
  ])('%s: a stream waiting for a slot gets comments, then its reply', async (route, body) => {
    const occupier = new AbortController()
    post(service.url, LONG, { signal: occupier.signal }).catch(() => undefined)
    await waitFor(() => service.llm.metrics()!.requestsActive === 1, 10_000, 'the slot to be taken')

    const res = await fetch(`${service.url}${route}`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
    // Headers come before any text: the request is still queued.
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    expect(service.llm.metrics()!.requestsQueued).toBe(1)
    const reader = res.body!.getReader()
    const decoder = new TextDecoder()
    let text = ''
    while (!text.includes(': keep-alive\n\n')) {
      const { value, done } = await reader.read()
      // A stream that ends first would otherwise spin here on empty reads.
      if (done) throw new Error(`the stream ended before a keep-alive comment: ${JSON.stringify(text)}`)
      text += decoder.decode(value, { stream: true })
    }
    expect(text).not.toMatch(/^data:/m)

    occupier.abort()
    // The reply follows. /api/chat has no max_tokens: its first piece is enough, then hang up.
    for (;;) {
      const { value, done } = await reader.read()
      if (done) break
      text += decoder.decode(value, { stream: true })
      if (route === '/api/chat' && /^data: /m.test(text)) break
    }
    await reader.cancel()
    const events = parseSse(text.replace(/^: keep-alive\n\n/gm, ''))
    if (route === '/api/chat') expect(JSON.parse(events[0].data).text).toEqual(expect.any(String))
    else expect(events[events.length - 1].data).toBe('[DONE]')
  })

  test('the openai client reads a stream that began with keep-alive comments', async () => {
    const OpenAI = (await import('openai')).default
    const client = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    const occupier = new AbortController()
    post(service.url, LONG, { signal: occupier.signal }).catch(() => undefined)
    await waitFor(() => service.llm.metrics()!.requestsActive === 1, 10_000, 'the slot to be taken')
    const stream = await client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'سلام' }], max_tokens: 4, stream: true })
    occupier.abort()
    let finish: string | null = null
    for await (const chunk of stream) finish = chunk.choices[0]?.finish_reason ?? finish
    expect(['stop', 'length']).toContain(finish)
  })
})

describe("Node's server limits", () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService(
      {
        HEADERS_TIMEOUT_MS: '300',
        REQUEST_TIMEOUT_MS: '600',
        KEEP_ALIVE_TIMEOUT_MS: '200',
        LLM_TIMEOUT_MS: '1000',
        SOCKET_IDLE_TIMEOUT_MS: '1500',
        MAX_CONNECTIONS: '3',
      },
      false,
    )
  })
  afterAll(() => service.close())

  const connect = () => rawConnection(service.url)

  test('headers sent too slowly: 408 and closed (headersTimeout)', async () => {
    const { socket, closed } = connect()
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n')
    expect(await closed).toMatch(/^HTTP\/1\.1 408/)
  })

  test('a body sent too slowly: 408 and closed (requestTimeout)', async () => {
    const { socket, closed } = connect()
    socket.write('POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"mess')
    expect(await closed).toMatch(/^HTTP\/1\.1 408/)
  })

  test('a kept-alive connection left idle after its reply is closed (keepAliveTimeout)', async () => {
    const { socket, closed } = connect()
    socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n')
    expect(await closed).toMatch(/^HTTP\/1\.1 503/)
  })

  test('a connection that never sends its headers: 408 and closed (headersTimeout)', async () => {
    const { closed } = connect()
    expect(await closed).toMatch(/^HTTP\/1\.1 408/)
  })

  test('connections beyond MAX_CONNECTIONS are refused; the others are served', async () => {
    const open = [connect(), connect(), connect()]
    await waitFor(() => open.every((c) => c.socket.readyState === 'open'), 10_000, 'three connections')
    // Node counts a connection once it has accepted it: wait until all three are counted.
    let counted = 0
    const poll = setInterval(() => service.server.getConnections((_err, n) => (counted = n)), 10)
    await waitFor(() => counted === 3, 10_000, 'the server to count three connections').finally(() => clearInterval(poll))
    const surplus = connect()
    expect(await surplus.closed).toBe('')
    open[0].socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n')
    expect(await open[0].closed).toMatch(/^HTTP\/1\.1 503/)
    for (const c of open) c.socket.destroy()
  })
})

describe('socket idle timeout', () => {
  test('a connection with no traffic is closed after SOCKET_IDLE_TIMEOUT_MS (here shorter than the other deadlines)', async () => {
    const service = await startTestService({ HEADERS_TIMEOUT_MS: '600000', REQUEST_TIMEOUT_MS: '600000', LLM_TIMEOUT_MS: '100', SOCKET_IDLE_TIMEOUT_MS: '300' }, false)
    try {
      expect(await rawConnection(service.url).closed).toBe('')
    } finally {
      await service.close()
    }
  })
})
