// POST /api/chat (JSON and SSE), /health, /metrics, request limits and concurrent chats, against
// the real Gemma 3 model.
import request from 'supertest'
import { PERSIAN, type TestService, parseSse, startTestService, testConfig } from './helpers'
import { engineLoadOptions } from '../src/multi-model/loader'

let service: TestService

beforeAll(async () => {
  service = await startTestService({ MAX_MESSAGE_CHARS: '500', MAX_HISTORY_MESSAGES: '6', BODY_LIMIT: '8kb' })
})

afterAll(async () => {
  await service.close()
})

describe('POST /api/chat', () => {
  test('replies in JSON with usage and timings', async () => {
    const res = await request(service.app).post('/api/chat').send({ message: 'سلام! حالت چطور است؟' })
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/application\/json/)
    expect(typeof res.body.reply).toBe('string')
    expect(res.body.reply.length).toBeGreaterThan(0)
    expect(['stop', 'length', 'eos']).toContain(res.body.finishReason)
    expect(res.body.model).toBe('gemma-3-270m-q4_k_m')
    expect(res.body.usage.promptTokens).toBeGreaterThan(10) // the Persian system prompt is in it
    expect(res.body.usage.completionTokens).toBeGreaterThan(0)
    expect(res.body.usage.completionTokens).toBeLessThanOrEqual(16)
    expect(res.body.usage.totalTokens).toBe(res.body.usage.promptTokens + res.body.usage.completionTokens)
    expect(res.body.timings.ttftMs).toBeGreaterThan(0)
    expect(res.headers['x-request-id']).toBe(res.body.requestId)
  })

  test('uses the history, and the repeated history comes from the prompt cache', async () => {
    const history = [
      { role: 'user', content: 'اسم من سارا است.' },
      { role: 'assistant', content: 'خوشبختم سارا!' },
    ]
    const first = await request(service.app).post('/api/chat').send({ message: 'اسم من چیست؟', history })
    expect(first.status).toBe(200)
    const second = await request(service.app)
      .post('/api/chat')
      .send({ message: 'یک سؤال دیگر دارم.', history: [...history, { role: 'user', content: 'اسم من چیست؟' }, { role: 'assistant', content: first.body.reply }] })
    expect(second.status).toBe(200)
    expect(second.body.usage.promptTokens).toBeGreaterThan(first.body.usage.promptTokens)
    expect(second.body.usage.cachedTokens).toBeGreaterThan(0)
  })

  test('streams SSE pieces that concatenate to valid Persian UTF-8 and end with a done event', async () => {
    const res = await fetch(`${service.url}/api/chat`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: 'یک جمله دربارهٔ تهران بنویس.', stream: true }),
    })
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/)
    const bytes = Buffer.from(await res.arrayBuffer())
    // Decoding strictly: any split multi-byte character would throw here.
    const body = new TextDecoder('utf-8', { fatal: true }).decode(bytes)
    const events = parseSse(body)
    const pieces = events.filter((e) => e.event === 'message').map((e) => JSON.parse(e.data).text as string)
    const done = events.filter((e) => e.event === 'done')
    expect(pieces.length).toBeGreaterThan(0)
    expect(done).toHaveLength(1)
    expect(events[events.length - 1].event).toBe('done')
    const summary = JSON.parse(done[0].data)
    const text = pieces.join('')
    expect(text).toBe(summary.reply)
    expect(text).not.toContain('\uFFFD')
    expect(text).toMatch(PERSIAN)
    expect(summary.usage.completionTokens).toBeGreaterThan(0)
  })

  test('a streamed reply equals the JSON reply for the same greedy request', async () => {
    // Same seed-free greedy decode: the service's defaults are sampled, so compare through /v1 with temperature 0.
    const body = { messages: [{ role: 'user', content: 'سلام' }], temperature: 0, max_tokens: 12 }
    const json = await request(service.app).post('/v1/chat/completions').send(body)
    const sse = await request(service.app).post('/v1/chat/completions').send({ ...body, stream: true })
    const text = parseSse(sse.text)
      .filter((e) => e.data !== '[DONE]')
      .map((e) => JSON.parse(e.data).choices[0]?.delta?.content ?? '')
      .join('')
    expect(text).toBe(json.body.choices[0].message.content)
  })
})

describe('STREAM_INTERVAL_MS: a streamed reply text goes out at most this often', () => {
  const contentPieces = (body: string) =>
    parseSse(body)
      .filter((e) => e.data !== '[DONE]')
      .map((e) => JSON.parse(e.data).choices[0]?.delta?.content)
      .filter((c): c is string => typeof c === 'string' && c.length > 0)

  test('text generated within the interval after the first piece follows as one event: at most two content events, the same text as the JSON reply', async () => {
    // Longer than the reply takes on any machine: everything after the first piece waits for the end.
    const paced = await startTestService({ STREAM_INTERVAL_MS: '60000', LLM_MAX_TOKENS: '24' })
    try {
      const body = { messages: [{ role: 'user', content: 'سلام' }], temperature: 0, max_tokens: 24 }
      const json = await request(paced.app).post('/v1/chat/completions').send(body)
      expect(json.body.usage.completion_tokens).toBeGreaterThan(2)
      const sse = await request(paced.app).post('/v1/chat/completions').send({ ...body, stream: true })
      const pieces = contentPieces(sse.text)
      expect(pieces.length).toBeLessThanOrEqual(2)
      expect(pieces.join('')).toBe(json.body.choices[0].message.content)
    } finally {
      await paced.close()
    }
  })

  test('LLM_THREAD_POLL is the engine threadPoll (unset: the engine default); outside 0..100 is a configuration error', () => {
    expect(testConfig().threadPoll).toBeUndefined()
    expect(testConfig({ LLM_THREAD_POLL: '0' }).threadPoll).toBe(0)
    expect(engineLoadOptions(testConfig({ LLM_THREAD_POLL: '100' }), 'm.gguf').threadPoll).toBe(100)
    for (const bad of ['-1', '101', 'fast']) expect(() => testConfig({ LLM_THREAD_POLL: bad })).toThrow(/LLM_THREAD_POLL/)
  })

  test('the event loop asks for a short scheduler slice unless LLM_RESPONSIVE_EVENT_LOOP=false', () => {
    expect(testConfig().responsiveEventLoop).toBe(true)
    expect(testConfig({ LLM_RESPONSIVE_EVENT_LOOP: 'false' }).responsiveEventLoop).toBe(false)
  })

  test('defaults to 25 ms; 0 turns pacing off; anything outside 0..60000 is a configuration error', () => {
    expect(testConfig().streamIntervalMs).toBe(25)
    expect(testConfig({ STREAM_INTERVAL_MS: '0' }).streamIntervalMs).toBe(0)
    for (const bad of ['-1', '60001', 'fast']) expect(() => testConfig({ STREAM_INTERVAL_MS: bad })).toThrow(/STREAM_INTERVAL_MS/)
  })
})

describe('bad input gets a 400 with a clear message, and the next request still works', () => {
  const cases: [string, () => request.Test, RegExp][] = [
    ['invalid JSON', () => request(service.app).post('/api/chat').set('Content-Type', 'application/json').send('{"message": "سلام"'), /not valid JSON/],
    ['no body', () => request(service.app).post('/api/chat'), /JSON object/],
    ['a JSON array body', () => request(service.app).post('/api/chat').send([1, 2]), /JSON object/],
    ['text/plain body', () => request(service.app).post('/api/chat').set('Content-Type', 'text/plain').send('سلام'), /JSON object/],
    ['missing message', () => request(service.app).post('/api/chat').send({}), /'message' is required/],
    ['numeric message', () => request(service.app).post('/api/chat').send({ message: 42 }), /'message' is required/],
    ['empty message', () => request(service.app).post('/api/chat').send({ message: '   ' }), /must not be empty/],
    ['too long message', () => request(service.app).post('/api/chat').send({ message: 'ب'.repeat(501) }), /longer than 500/],
    ['history not an array', () => request(service.app).post('/api/chat').send({ message: 'سلام', history: 'x' }), /'history' must be an array/],
    ['history with a system role', () => request(service.app).post('/api/chat').send({ message: 'سلام', history: [{ role: 'system', content: 'x' }] }), /'user' or 'assistant'/],
    ['history item without content', () => request(service.app).post('/api/chat').send({ message: 'سلام', history: [{ role: 'user' }] }), /content' must be a string/],
    ['too much history', () => request(service.app).post('/api/chat').send({ message: 'سلام', history: Array(7).fill({ role: 'user', content: 'x' }) }), /more than 6 messages/],
    ['stream not a boolean', () => request(service.app).post('/api/chat').send({ message: 'سلام', stream: 'yes' }), /'stream' must be a boolean/],
  ]
  test.each(cases)('%s', async (_name, send, message) => {
    const res = await send()
    expect(res.status).toBe(400)
    expect(res.headers['content-type']).toMatch(/application\/json/)
    expect(res.body.error.type).toBe('invalid_request_error')
    expect(res.body.error.message).toMatch(message)
    expect(res.text).not.toMatch(/at .*\.(ts|js):\d+/) // no stack trace
  })

  test('earlier assistant replies are not held to the per-message limit (only what users type is)', async () => {
    const history = [
      { role: 'user', content: 'یک متن بلند بنویس.' },
      { role: 'assistant', content: 'متن '.repeat(200) }, // 800 characters > MAX_MESSAGE_CHARS 500
    ]
    const res = await request(service.app).post('/api/chat').send({ message: 'ممنون', history })
    expect(res.status).toBe(200)
  })

  test('a body over the size limit is a 413 JSON error', async () => {
    const res = await request(service.app).post('/api/chat').send({ message: 'x'.repeat(10_000) })
    expect(res.status).toBe(413)
    expect(res.body.error.code).toBe('request_too_large')
  })

  test('unknown routes are a JSON 404', async () => {
    const res = await request(service.app).post('/api/nothing').send({})
    expect(res.status).toBe(404)
    expect(res.body.error.code).toBe('not_found')
  })

  test('after all of that, a chat still works', async () => {
    const res = await request(service.app).post('/api/chat').send({ message: 'سلام' })
    expect(res.status).toBe(200)
    expect(res.body.reply.length).toBeGreaterThan(0)
  })
})

describe('health, metrics, page', () => {
  test('GET /health is 200 with the model and slots', async () => {
    const res = await request(service.app).get('/health')
    expect(res.status).toBe(200)
    expect(res.body).toMatchObject({ status: 'ok', modelLoaded: true, model: 'gemma-3-270m-q4_k_m', slotsTotal: 4 })
  })

  test('GET /metrics is Prometheus text with the engine and HTTP counters', async () => {
    const res = await request(service.app).get('/metrics')
    expect(res.status).toBe(200)
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(res.text).toMatch(/^llm_model_loaded 1$/m)
    expect(res.text).toMatch(/^# TYPE llm_requests_total counter$/m)
    const completed = Number(/^llm_requests_completed_total (\d+)$/m.exec(res.text)?.[1])
    expect(completed).toBeGreaterThanOrEqual(4)
    expect(res.text).toMatch(/^# TYPE llm_slots gauge$/m)
    expect(res.text).toMatch(/^llm_slots 4$/m)
    expect(res.text).toMatch(/^llm_time_to_first_token_seconds\{quantile="0.5"\} [\d.e-]+$/m)
    expect(res.text).toMatch(/^http_requests_total\{method="POST",route="\/api\/chat",status="200"\} \d+$/m)
    expect(res.text).toMatch(/^http_requests_total\{method="POST",route="\/api\/chat",status="400"\} \d+$/m)
    expect(res.text).toMatch(/^process_resident_memory_bytes \d+/m)
    // Cost tracking with one model: tokens per client and the model's id.
    expect(Number(/^llm_client_completion_tokens_total\{client="anonymous",model="gemma-3-270m-q4_k_m"\} (\d+)$/m.exec(res.text)?.[1])).toBeGreaterThan(0)
    // Every sample line is `name{labels} value`.
    for (const line of res.text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[\d.e+-]+|NaN)$/)
    }
  })

  test('GET / serves the right-to-left Persian page with no external resources', async () => {
    const res = await request(service.app).get('/')
    expect(res.status).toBe(200)
    expect(res.text).toMatch(/<html lang="fa" dir="rtl">/)
    expect(res.text).not.toMatch(/https?:\/\//)
    expect(res.headers['content-security-policy']).toMatch(/default-src 'self'/)
    const js = await request(service.app).get('/app.js')
    expect(js.status).toBe(200)
    expect(js.text).not.toMatch(/https?:\/\//)
  })
})

describe('concurrent chats', () => {
  test('8 chats at once on 4 slots all get their own replies', async () => {
    const before = service.llm.metrics()!.requestsCompleted
    const questions = ['سلام', 'هوا چطور است؟', 'یک عدد بگو', 'پایتخت ایران کجاست؟', 'شعر بگو', 'ساعت چند است؟', 'خداحافظ', 'چه خبر؟']
    const replies = await Promise.all(
      questions.map((message, i) =>
        i % 2 === 0
          ? request(service.app).post('/api/chat').send({ message })
          : request(service.app).post('/api/chat').send({ message, stream: true }),
      ),
    )
    for (const res of replies) {
      expect(res.status).toBe(200)
      if (res.headers['content-type'].startsWith('text/event-stream')) {
        expect(parseSse(res.text).some((e) => e.event === 'done')).toBe(true)
      } else {
        expect(res.body.reply.length).toBeGreaterThan(0)
      }
    }
    const m = service.llm.metrics()!
    expect(m.requestsCompleted - before).toBe(8)
    expect(m.requestsActive).toBe(0)
  })
})
