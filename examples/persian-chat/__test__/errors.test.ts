// Every error status the service documents, each produced the way it happens in production, and
// each followed by a request that works.
import request from 'supertest'
import { type TestService, parseSse, startTestService, waitFor } from './helpers'

const chat = (service: TestService, body: object = { message: 'سلام' }) => request(service.app).post('/api/chat').send(body)

function expectOpenAiError(res: request.Response, status: number, code: string) {
  expect(res.status).toBe(status)
  expect(res.headers['content-type']).toMatch(/application\/json/)
  expect(res.body.error).toMatchObject({ code, message: expect.any(String), type: expect.any(String) })
  expect(res.text).not.toMatch(/at .*\.(ts|js):\d+/)
}

describe('503 while the model is not loaded', () => {
  test('unloaded: /health 503, chat 503 model_not_loaded, /metrics still answers', async () => {
    const service = await startTestService({}, false)
    try {
      const health = await request(service.app).get('/health')
      expect(health.status).toBe(503)
      expect(health.body.status).toBe('unloaded')
      const unloaded = await chat(service)
      expectOpenAiError(unloaded, 503, 'model_not_loaded')
      expect(unloaded.headers['retry-after']).toBe('5')
      expectOpenAiError(await chat(service, { message: 'سلام', stream: true }), 503, 'model_not_loaded')
      const v1 = await request(service.app).post('/v1/chat/completions').send({ messages: [{ role: 'user', content: 'سلام' }] })
      expectOpenAiError(v1, 503, 'model_not_loaded')
      expect(v1.body.error.type).toBe('service_unavailable_error')
      const metrics = await request(service.app).get('/metrics')
      expect(metrics.status).toBe(200)
      expect(metrics.text).toMatch(/^llm_model_loaded 0$/m)

      // Loading: 503 'loading' until the model is in, then 200 and chats work.
      const loading = service.llm.start()
      const during = await request(service.app).get('/health')
      expect(during.status).toBe(503)
      expect(during.body.status).toBe('loading')
      await loading
      expect((await request(service.app).get('/health')).status).toBe(200)
      expect((await chat(service)).status).toBe(200)
    } finally {
      await service.close()
    }
  })

  test('a model that fails to load: /health 503 with the error, chats 503', async () => {
    const service = await startTestService({ LLM_MODEL_PATH: __filename }, false)
    try {
      await expect(service.llm.start()).rejects.toMatchObject({ code: 'MODEL_LOAD_FAILED' })
      const health = await request(service.app).get('/health')
      expect(health.status).toBe(503)
      expect(health.body.status).toBe('error')
      expect(health.body.error).toMatch(/GGUF|gguf/)
      expectOpenAiError(await chat(service), 503, 'model_not_loaded')
    } finally {
      await service.close()
    }
  })
})

describe('401 with API_KEY set', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService({ API_KEY: 's3cret' })
  })
  afterAll(() => service.close())

  test('missing or wrong key is 401 invalid_api_key; the right key works; /health stays open', async () => {
    expectOpenAiError(await chat(service), 401, 'invalid_api_key')
    expectOpenAiError(await chat(service).set('Authorization', 'Bearer wrong'), 401, 'invalid_api_key')
    expectOpenAiError(await request(service.app).get('/v1/models').set('Authorization', 's3cret'), 401, 'invalid_api_key')
    const ok = await request(service.app).post('/api/chat').set('Authorization', 'Bearer s3cret').send({ message: 'سلام' })
    expect(ok.status).toBe(200)
    expect((await request(service.app).get('/health')).status).toBe(200)
    expect((await request(service.app).get('/')).status).toBe(200)
  })
})

describe('CORS (CORS_ORIGINS)', () => {
  test('allowed origins get CORS headers and preflights pass before the API key check; others get none', async () => {
    const service = await startTestService({ CORS_ORIGINS: 'http://app.example', API_KEY: 'k' }, false)
    try {
      const preflight = await request(service.app)
        .options('/v1/chat/completions')
        .set('Origin', 'http://app.example')
        .set('Access-Control-Request-Method', 'POST')
        .set('Access-Control-Request-Headers', 'authorization, content-type')
      expect(preflight.status).toBe(204)
      expect(preflight.headers['access-control-allow-origin']).toBe('http://app.example')
      expect(preflight.headers['access-control-allow-headers']).toMatch(/authorization/)
      const denied = await request(service.app).get('/v1/models').set('Origin', 'http://evil.example')
      expect(denied.headers['access-control-allow-origin']).toBeUndefined()
      const allowed = await request(service.app).get('/v1/models').set('Origin', 'http://app.example').set('Authorization', 'Bearer k')
      expect(allowed.status).toBe(200)
      expect(allowed.headers['access-control-allow-origin']).toBe('http://app.example')
    } finally {
      await service.close()
    }
  })
})

describe('429', () => {
  test('per-IP rate limit: rate_limit_exceeded with Retry-After, other endpoints unaffected', async () => {
    const service = await startTestService({ RATE_LIMIT_PER_MINUTE: '3' })
    try {
      for (let i = 0; i < 3; i++) expect((await request(service.app).get('/v1/models')).status).toBe(200)
      const limited = await chat(service)
      expectOpenAiError(limited, 429, 'rate_limit_exceeded')
      expect(limited.body.error.type).toBe('rate_limit_error')
      expect(Number(limited.headers['retry-after'])).toBeGreaterThan(0)
      expect((await request(service.app).get('/health')).status).toBe(200)
    } finally {
      await service.close()
    }
  })

  test('queue full: queue_full while every slot and queue place is taken, then chats work again', async () => {
    const service = await startTestService({ LLM_PARALLEL: '1', LLM_MAX_QUEUE: '1', LLM_MAX_TOKENS: '100' })
    try {
      const running = request(service.app).post('/api/chat').send({ message: 'یک داستان بلند بنویس.' })
      const runningDone = running.then((r) => r)
      await waitFor(() => service.llm.metrics()!.requestsActive === 1, 10_000, 'the first request to take the slot')
      const queued = request(service.app).post('/api/chat').send({ message: 'سلام' }).then((r) => r)
      await waitFor(() => service.llm.metrics()!.requestsQueued === 1, 10_000, 'the second request to queue')
      const rejected = await chat(service)
      expectOpenAiError(rejected, 429, 'queue_full')
      expect(rejected.headers['retry-after']).toBe('1')
      const v1 = await request(service.app).post('/v1/chat/completions').send({ messages: [{ role: 'user', content: 'x' }], stream: true })
      expectOpenAiError(v1, 429, 'queue_full') // before the first chunk: a status, not an SSE error
      expect((await runningDone).status).toBe(200)
      expect((await queued).status).toBe(200)
      expect((await chat(service)).status).toBe(200)
    } finally {
      await service.close()
    }
  })
})

describe('504 timeout', () => {
  let service: TestService
  beforeAll(async () => {
    // Every decode step takes 50 ms more (test-only fault): a 2,000-token reply needs far more
    // than the 3 s deadline and a 2-token one far less, however fast or busy the machine is.
    service = await startTestService({ LLM_TIMEOUT_MS: '3000', LLM_MAX_TOKENS: '2000', LLM_PARALLEL: '1', LLM_MAX_QUEUE: '4', NAPI_LLAMA_FAULTS: 'step:50' })
  })
  afterAll(() => service.close())

  test('a reply that outlives the deadline is a 504 timeout', async () => {
    const res = await chat(service, { message: 'یک داستان خیلی بلند دربارهٔ دریا بنویس.' })
    expectOpenAiError(res, 504, 'timeout')
    expect(res.body.error.type).toBe('timeout_error')
    // The openai client would otherwise retry it twice, holding a slot for two more timeouts.
    expect(res.headers['x-should-retry']).toBe('false')
    const v1 = await request(service.app).post('/v1/chat/completions').send({ messages: [{ role: 'user', content: 'یک داستان خیلی بلند بنویس.' }] })
    expectOpenAiError(v1, 504, 'timeout')
  })

  test('a stream that times out after its first piece ends with an error event', async () => {
    const res = await chat(service, { message: 'یک داستان خیلی بلند دربارهٔ کوه بنویس.', stream: true })
    expect(res.status).toBe(200)
    const events = parseSse(res.text)
    expect(events.some((e) => e.event === 'message')).toBe(true)
    const last = events[events.length - 1]
    expect(last.event).toBe('error')
    expect(JSON.parse(last.data).error.code).toBe('timeout')
    expect(service.llm.metrics()!.requestsTimedOut).toBeGreaterThanOrEqual(3)
    // The tokens it was sent count against its client; the replies that timed out before any
    // token, and every prompt of a reply that did not finish, count nothing.
    const metrics = (await request(service.app).get('/metrics')).text
    const series = (name: string) => new RegExp(`^${name}\\{client="anonymous",model="${service.llm.modelId}"\\} (\\d+)$`, 'm')
    const value = (name: string) => Number(series(name).exec(metrics)?.[1] ?? 0)
    expect(value('llm_client_completion_tokens_total')).toBeGreaterThan(0)
    expect(value('llm_client_prompt_tokens_total')).toBe(0)
  })

  test('a short reply within the deadline still works', async () => {
    const res = await request(service.app).post('/v1/chat/completions').send({ messages: [{ role: 'user', content: 'سلام' }], max_tokens: 2 })
    expect(res.status).toBe(200)
  })
})

describe('400 context overflow', () => {
  test('/v1 rejects a prompt that does not fit; /api/chat drops old turns instead', async () => {
    const service = await startTestService({ LLM_CONTEXT_SIZE: '256', MAX_MESSAGE_CHARS: '4000' })
    try {
      const long = 'این یک جملهٔ نسبتاً طولانی برای پر کردن متن است. '.repeat(30)
      const v1 = await request(service.app).post('/v1/chat/completions').send({ messages: [{ role: 'user', content: long }] })
      expectOpenAiError(v1, 400, 'context_length_exceeded')
      expectOpenAiError(await chat(service, { message: long }), 400, 'context_length_exceeded')

      const history = Array.from({ length: 6 }, (_, i) => ({ role: i % 2 ? 'assistant' : 'user', content: 'متن قدیمی گفتگو '.repeat(12) }))
      const res = await chat(service, { message: 'سلام', history })
      expect(res.status).toBe(200)
      expect(res.body.droppedMessages).toBeGreaterThan(0)
    } finally {
      await service.close()
    }
  })
})
