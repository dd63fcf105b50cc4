// Several models (LLM_MODELS_FILE) against the real service and real models, SmolLM2 and Gemma 3:
// each answer comes from the model the request names (compared with a direct Engine.load() of
// that model), lazy loads, least-recently-used eviction under a budget that holds one model but
// not both, a busy model never evicted, waits bounded by the deadline, the idle TTL, a model too
// large for the budget, a broken one, a model on a remote llama-server, and what /v1/models,
// /health and /metrics (tokens per API key and model) say about it all.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import request from 'supertest'
import { Engine } from 'napi-llama'
import { startLlamaServer, type LlamaServer } from '../../../__test__/llama-server'
import { ConfigError } from '../src/config'
import { parseBytes } from '../src/multi-model/bytes'
import { engineLoadOptions } from '../src/multi-model/loader'
import { type TestService, parseSse, startTestService, testConfig, waitFor } from './helpers'

const MODELS_DIR = process.env.NAPI_LLAMA_MODELS_DIR || path.join(__dirname, '..', '..', '..', 'models')
const SMOLLM2 = path.join(MODELS_DIR, 'SmolLM2-135M-Instruct.Q4_1.gguf')
const GEMMA3 = path.join(MODELS_DIR, 'gemma-3-270m-q4_k_m.gguf')
const MiB = 1024 * 1024

/** Writes a models file into a fresh folder; returns its path. */
function modelsFile(content: unknown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'persian-chat-models-'))
  const file = path.join(dir, 'models.json')
  fs.writeFileSync(file, typeof content === 'string' ? content : JSON.stringify(content))
  return file
}

/** The service's test settings with a models file (LLM_MODEL_PATH from the environment must not apply). */
const multiModelEnv = (file: string, env: Record<string, string> = {}) => ({ LLM_MODEL_PATH: '', LLM_MODELS_FILE: file, ...env })

const health = async (service: TestService) => (await request(service.app).get('/health')).body
const stateOf = async (service: TestService, name: string) => (await health(service)).models.find((m: { name: string }) => m.name === name)

function metricValue(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '))
  return line === undefined ? 0 : Number(line.slice(series.length + 1))
}

const QUESTION = 'سلام! یک جمله دربارهٔ تهران بگو.'
const MAX_TOKENS = 12

/** What the model itself answers, loaded on its own with the service's settings, greedy. */
async function directAnswer(modelPath: string): Promise<string> {
  const config = testConfig()
  const engine = await Engine.load({ modelPath, contextSize: config.contextSize, parallel: config.parallel, threads: config.threads })
  try {
    const messages = [
      { role: 'system' as const, content: config.systemPrompt },
      { role: 'user' as const, content: QUESTION },
    ]
    const g = await engine.generate(messages, { maxTokens: MAX_TOKENS, temperature: 0, topP: config.topP, repeatPenalty: config.repeatPenalty })
    return g.text
  } finally {
    await engine.unload()
  }
}

describe('two models under a budget that holds one of them', () => {
  let service: TestService
  const expected: Record<string, string> = {}
  const keyA = { Authorization: 'Bearer key-alice' }
  const keyB = { Authorization: 'Bearer key-bob' }
  const ask = (model: string | undefined, key = keyA) =>
    request(service.app)
      .post('/v1/chat/completions')
      .set(key)
      .send({ ...(model ? { model } : {}), messages: [{ role: 'user', content: QUESTION }], temperature: 0, max_tokens: MAX_TOKENS })

  beforeAll(async () => {
    expected.smollm2 = await directAnswer(SMOLLM2)
    expected.gemma3 = await directAnswer(GEMMA3)
    // Gemma 3 first in the file, SmolLM2 the default: `default: true` wins over the order.
    const file = modelsFile({ models: [{ name: 'gemma3', path: 'gemma3' }, { name: 'smollm2', path: 'smollm2', default: true }] })
    // With the tests' settings SmolLM2 takes about 180 MiB and Gemma 3 about 310 MiB: one fits, not both.
    service = await startTestService(multiModelEnv(file, { LLM_MEMORY_BUDGET: '400MiB', LLM_MODEL_IDLE_TTL_MS: '0', API_KEYS: 'alice:key-alice,bob:key-bob' }))
  })

  afterAll(async () => {
    await service.close()
  })

  test('the two models answer differently on their own (so the checks below can tell them apart)', () => {
    expect(expected.smollm2.length).toBeGreaterThan(0)
    expect(expected.gemma3.length).toBeGreaterThan(0)
    expect(expected.smollm2).not.toBe(expected.gemma3)
  })

  test('/v1/models lists every configured model with its state; nothing is loaded before a request needs it', async () => {
    const res = await request(service.app).get('/v1/models').set(keyA)
    expect(res.status).toBe(200)
    expect(res.body.data).toEqual([
      expect.objectContaining({ id: 'gemma3', object: 'model', state: 'configured', default: false }),
      expect.objectContaining({ id: 'smollm2', object: 'model', state: 'configured', default: true }),
    ])
    const h = await health(service)
    expect(h).toMatchObject({ status: 'ok', model: 'smollm2', modelLoaded: false, memoryUsedBytes: 0, memoryBudgetBytes: 400 * MiB })
    expect(JSON.stringify(h)).not.toMatch(/\.gguf|\//) // no paths, not even file names
  })

  test('a request naming no model gets the default one, loaded on first use; its answer is that model\'s', async () => {
    const res = await ask(undefined)
    expect(res.status).toBe(200)
    expect(res.body.model).toBe('smollm2')
    expect(res.body.choices[0].message.content).toBe(expected.smollm2)
    const smollm2 = await stateOf(service, 'smollm2')
    expect(smollm2).toMatchObject({ state: 'loaded', inFlight: 0, slotsTotal: 4 })
    expect(smollm2.memoryBytes).toBeGreaterThan(0)
    expect((await stateOf(service, 'gemma3')).state).toBe('configured')
    expect((await health(service)).memoryUsedBytes).toBe(smollm2.memoryBytes)
  })

  test('asking for the other model evicts the idle one to stay in budget, and the answer is Gemma\'s', async () => {
    const res = await ask('gemma3')
    expect(res.status).toBe(200)
    expect(res.body.model).toBe('gemma3')
    expect(res.body.choices[0].message.content).toBe(expected.gemma3)
    expect(await stateOf(service, 'smollm2')).toMatchObject({ state: 'unloaded', unloadReason: 'evicted', memoryBytes: 0 })
    const gemma3 = await stateOf(service, 'gemma3')
    expect(gemma3.state).toBe('loaded')
    const h = await health(service)
    expect(h.memoryUsedBytes).toBe(gemma3.memoryBytes)
    expect(h.memoryUsedBytes).toBeLessThanOrEqual(400 * MiB)
  })

  test('and back: SmolLM2 is loaded again (evicting Gemma 3), estimated from its last load, with the same answer', async () => {
    const before = await stateOf(service, 'smollm2')
    const res = await ask('smollm2', keyB)
    expect(res.status).toBe(200)
    expect(res.body.choices[0].message.content).toBe(expected.smollm2)
    const after = await stateOf(service, 'smollm2')
    expect(after.estimatedMemoryBytes).toBe(before.estimatedMemoryBytes) // its real figure, known since its first load
    expect(after.memoryBytes).toBe(after.estimatedMemoryBytes)
    expect(await stateOf(service, 'gemma3')).toMatchObject({ state: 'unloaded', unloadReason: 'evicted' })
  })

  test('/api/chat takes `model` too, in JSON and streamed, and answers with that model\'s name', async () => {
    const json = await request(service.app).post('/api/chat').set(keyA).send({ message: 'سلام', model: 'smollm2' })
    expect(json.status).toBe(200)
    expect(json.body.model).toBe('smollm2')
    const streamed = await request(service.app).post('/api/chat').set(keyA).send({ message: 'سلام', model: 'gemma3', stream: true })
    expect(streamed.status).toBe(200)
    const done = parseSse(streamed.text).find((e) => e.event === 'done')!
    expect(JSON.parse(done.data).model).toBe('gemma3')
    expect((await stateOf(service, 'gemma3')).state).toBe('loaded')
  })

  test('a streamed /v1 reply that has to load its model first is the same as the direct answer', async () => {
    const res = await request(service.app)
      .post('/v1/chat/completions')
      .set(keyA)
      .send({ model: 'smollm2', messages: [{ role: 'user', content: QUESTION }], temperature: 0, max_tokens: MAX_TOKENS, stream: true })
    expect(res.status).toBe(200)
    const chunks = parseSse(res.text).filter((e) => e.data !== '[DONE]').map((e) => JSON.parse(e.data))
    expect(chunks.every((c) => c.model === 'smollm2')).toBe(true)
    expect(chunks.map((c) => c.choices[0]?.delta?.content ?? '').join('')).toBe(expected.smollm2)
  })

  test('an unknown model is 404 model_not_found on every route, and the next request works', async () => {
    const v1 = await request(service.app).post('/v1/chat/completions').set(keyA).send({ model: 'gpt-4o', messages: [{ role: 'user', content: 'سلام' }] })
    expect(v1.status).toBe(404)
    expect(v1.body.error).toEqual({ message: "The model 'gpt-4o' does not exist", type: 'not_found_error', param: 'model', code: 'model_not_found' })
    for (const stream of [false, true]) {
      const chat = await request(service.app).post('/api/chat').set(keyA).send({ message: 'سلام', model: 'nope', stream })
      expect(chat.status).toBe(404)
      expect(chat.body.error.code).toBe('model_not_found')
    }
    const retrieve = await request(service.app).get('/v1/models/nope').set(keyA)
    expect(retrieve.status).toBe(404)
    expect(retrieve.body.error.code).toBe('model_not_found')
    expect((await request(service.app).get('/v1/models/gemma3').set(keyA)).body).toMatchObject({ id: 'gemma3', state: expect.any(String) })
    const badType = await request(service.app).post('/api/chat').set(keyA).send({ message: 'سلام', model: 42 })
    expect(badType.status).toBe(400)
    expect(badType.body.error.message).toMatch(/'model' must be a string/)
    expect((await ask('smollm2')).status).toBe(200)
  })

  test('a model with requests in flight is never evicted: the other model\'s request waits until it is idle', async () => {
    expect((await ask('smollm2')).status).toBe(200)
    // A request of our own holds SmolLM2, as a long reply would.
    const lease = await service.llm.registry!.acquire('smollm2', { deadlineAt: Date.now() + 60_000 })
    let answered = false
    const gemma = ask('gemma3').then((res) => {
      answered = true
      return res
    })
    await waitFor(() => service.llm.registry!.statuses().some((m) => m.name === 'gemma3'), 1000)
    await new Promise((r) => setTimeout(r, 500))
    expect(answered).toBe(false)
    expect(await stateOf(service, 'smollm2')).toMatchObject({ state: 'loaded', inFlight: 1 })
    expect((await stateOf(service, 'gemma3')).state).not.toBe('loading')
    lease.release()
    const res = await gemma
    expect(res.status).toBe(200)
    expect(res.body.choices[0].message.content).toBe(expected.gemma3)
    expect(await stateOf(service, 'smollm2')).toMatchObject({ state: 'unloaded', unloadReason: 'evicted' })
  })

  test('/metrics: each model\'s state, memory, loads and evictions, its engine\'s series, and tokens per API key and model', async () => {
    const before = (await request(service.app).get('/metrics').set(keyA)).text
    const alice = await ask('gemma3', keyA)
    const bob = await ask('smollm2', keyB)
    const res = await request(service.app).get('/metrics').set(keyA)
    expect(res.status).toBe(200)
    const delta = (series: string) => metricValue(res.text, series) - metricValue(before, series)
    expect(delta('llm_client_prompt_tokens_total{client="alice",model="gemma3"}')).toBe(alice.body.usage.prompt_tokens)
    expect(delta('llm_client_completion_tokens_total{client="alice",model="gemma3"}')).toBe(alice.body.usage.completion_tokens)
    expect(delta('llm_client_prompt_tokens_total{client="bob",model="smollm2"}')).toBe(bob.body.usage.prompt_tokens)
    expect(delta('llm_client_completion_tokens_total{client="bob",model="smollm2"}')).toBe(bob.body.usage.completion_tokens)
    expect(delta('llm_client_prompt_tokens_total{client="bob",model="gemma3"}')).toBe(0)

    expect(res.text).toMatch(/^llm_memory_budget_bytes 419430400$/m)
    expect(res.text).toMatch(/^llm_model_loaded\{model="smollm2"\} 1$/m)
    expect(res.text).toMatch(/^llm_model_loaded\{model="gemma3"\} 0$/m)
    expect(res.text).toMatch(/^llm_model_state\{model="gemma3",state="unloaded"\} 1$/m)
    expect(res.text).toMatch(/^llm_model_state\{model="smollm2",state="loaded"\} 1$/m)
    expect(metricValue(res.text, 'llm_model_unloads_total{model="gemma3",reason="evicted"}')).toBeGreaterThanOrEqual(2)
    expect(metricValue(res.text, 'llm_model_loads_total{model="smollm2"}')).toBeGreaterThanOrEqual(4)
    expect(metricValue(res.text, 'llm_model_memory_bytes{model="smollm2"}')).toBe(metricValue(res.text, 'llm_memory_used_bytes'))
    // The loaded engine's own series carry its model's name; the unloaded one has none.
    expect(metricValue(res.text, 'llm_requests_completed_total{model="smollm2"}')).toBeGreaterThanOrEqual(1)
    expect(res.text).toMatch(/^llm_model_info\{model="smollm2",architecture="llama",context_size="1024",parallel="4"\} 1$/m)
    expect(res.text).not.toMatch(/^llm_requests_completed_total\{model="gemma3"\}/m)
    expect(res.text).toMatch(/^llm_time_to_first_token_seconds\{model="smollm2",quantile="0.5"\} [\d.e-]+$/m)
    // Every family once, every sample line well formed.
    expect(res.text.match(/^# TYPE llm_model_loaded /gm)).toHaveLength(1)
    for (const line of res.text.split('\n').filter((l) => l && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-zA-Z_:][a-zA-Z0-9_:]*(\{.*\})? (-?[\d.e+-]+|NaN)$/)
    }
  })
})

describe('concurrent requests for two models under a budget that holds one', () => {
  let service: TestService

  beforeAll(async () => {
    const file = modelsFile({ models: [{ name: 'smollm2', path: SMOLLM2 }, { name: 'gemma3', path: GEMMA3 }] })
    // step:40 makes every decode step 40 ms longer: a reply of 8 tokens takes at least 320 ms.
    service = await startTestService(multiModelEnv(file, { LLM_MEMORY_BUDGET: '400MiB', NAPI_LLAMA_FAULTS: 'step:40' }))
  })

  afterAll(async () => {
    await service.close()
  })

  test('both are answered; the second model loads only once the first one\'s reply is over', async () => {
    const body = (model: string) => ({ model, messages: [{ role: 'user', content: 'سلام' }], temperature: 0, max_tokens: 8 })
    const finished: string[] = []
    const send = (model: string) =>
      request(service.app)
        .post('/v1/chat/completions')
        .send(body(model))
        .then((res) => {
          finished.push(model)
          return res
        })
    const first = send('smollm2')
    await waitFor(() => service.llm.registry!.statuses().find((m) => m.name === 'smollm2')!.inFlight === 1, 30_000, 'smollm2 to be in use')
    const second = send('gemma3')
    const [a, b] = await Promise.all([first, second])
    expect(a.status).toBe(200)
    expect(b.status).toBe(200)
    expect(a.body.model).toBe('smollm2')
    expect(b.body.model).toBe('gemma3')
    expect(finished).toEqual(['smollm2', 'gemma3'])
    expect(await stateOf(service, 'smollm2')).toMatchObject({ state: 'unloaded', unloadReason: 'evicted' })
    expect((await health(service)).memoryUsedBytes).toBeLessThanOrEqual(400 * MiB)
  })
})

describe('a load that turns out larger than its estimate', () => {
  test('evicts idle models once its real size is known, so the budget holds again', async () => {
    // Before its first load SmolLM2 is estimated at its file size (about 94 MiB): next to Gemma 3
    // (about 310 MiB loaded) that fits 420 MiB; loaded, it takes about 180 MiB, which does not.
    const file = modelsFile({ models: [{ name: 'gemma3', path: 'gemma3' }, { name: 'smollm2', path: 'smollm2' }] })
    const service = await startTestService(multiModelEnv(file, { LLM_MEMORY_BUDGET: '420MiB' }))
    try {
      expect((await request(service.app).post('/api/chat').send({ message: 'سلام', model: 'gemma3' })).status).toBe(200)
      expect((await stateOf(service, 'smollm2')).estimatedMemoryBytes).toBe(fs.statSync(SMOLLM2).size)
      expect((await request(service.app).post('/api/chat').send({ message: 'سلام', model: 'smollm2' })).status).toBe(200)
      expect(await stateOf(service, 'gemma3')).toMatchObject({ state: 'unloaded', unloadReason: 'evicted' })
      const h = await health(service)
      expect(h.memoryUsedBytes).toBeLessThanOrEqual(420 * MiB)
      expect(h.models.find((m: { name: string }) => m.name === 'smollm2').estimatedMemoryBytes).toBeGreaterThan(fs.statSync(SMOLLM2).size)
    } finally {
      await service.close()
    }
  })
})

describe('a request waits for its model only until its deadline', () => {
  test('504 timeout while the memory it needs is held by a busy model; the service stays healthy', async () => {
    const file = modelsFile({ models: [{ name: 'smollm2', path: SMOLLM2 }, { name: 'gemma3', path: GEMMA3 }] })
    const service = await startTestService(multiModelEnv(file, { LLM_MEMORY_BUDGET: '400MiB', LLM_TIMEOUT_MS: '1000' }))
    try {
      const lease = await service.llm.registry!.acquire('smollm2', { deadlineAt: Date.now() + 60_000 })
      const started = Date.now()
      const res = await request(service.app).post('/v1/chat/completions').send({ model: 'gemma3', messages: [{ role: 'user', content: 'سلام' }] })
      expect(res.status).toBe(504)
      expect(res.body.error.code).toBe('timeout')
      expect(res.headers['x-should-retry']).toBe('false')
      expect(Date.now() - started).toBeGreaterThanOrEqual(950)
      const h = await health(service)
      expect(h.status).toBe('ok')
      expect(h.models.find((m: { name: string }) => m.name === 'gemma3').state).toBe('configured')
      lease.release()
      expect((await stateOf(service, 'smollm2')).inFlight).toBe(0)
    } finally {
      await service.close()
    }
  })
})

describe('idle TTL', () => {
  test('a model idle for LLM_MODEL_IDLE_TTL_MS is unloaded, one with idleTtlMs 0 stays, and the next request loads it again', async () => {
    const file = modelsFile({ models: [{ name: 'smollm2', path: 'smollm2' }, { name: 'gemma3', path: 'gemma3', idleTtlMs: 0 }] })
    const service = await startTestService(multiModelEnv(file, { LLM_MODEL_IDLE_TTL_MS: '300' }))
    const chat = (model: string) => request(service.app).post('/api/chat').send({ message: 'سلام', model })
    try {
      expect((await chat('gemma3')).status).toBe(200)
      expect((await chat('smollm2')).status).toBe(200)
      await waitFor(() => service.llm.registry!.statuses()[0].state === 'unloaded', 10_000, 'smollm2 to be unloaded')
      expect(await stateOf(service, 'smollm2')).toMatchObject({ state: 'unloaded', unloadReason: 'idle' })
      expect((await stateOf(service, 'gemma3')).state).toBe('loaded')
      expect((await chat('smollm2')).status).toBe(200)
      expect((await stateOf(service, 'smollm2')).state).toBe('loaded')
      const metrics = (await request(service.app).get('/metrics')).text
      expect(metricValue(metrics, 'llm_model_unloads_total{model="smollm2",reason="idle"}')).toBe(1)
      expect(metricValue(metrics, 'llm_model_loads_total{model="smollm2"}')).toBe(2)
    } finally {
      await service.close()
    }
  })
})

describe('models that cannot be served', () => {
  let service: TestService
  let broken: string

  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'persian-chat-broken-'))
    broken = path.join(dir, 'broken.gguf')
    fs.writeFileSync(broken, 'not a model')
    // Gemma 3's file (about 241 MiB) fits 250 MiB; with its KV cache it does not.
    const file = modelsFile({ models: [{ name: 'smollm2', path: SMOLLM2 }, { name: 'gemma3', path: GEMMA3 }, { name: 'broken', path: broken }] })
    service = await startTestService(multiModelEnv(file, { LLM_MEMORY_BUDGET: '250MiB' }))
  })

  afterAll(async () => {
    await service.close()
  })

  test('a model larger than the whole budget is refused with 503 model_too_large, not loaded again, and others still work', async () => {
    const ask = () => request(service.app).post('/v1/chat/completions').send({ model: 'gemma3', messages: [{ role: 'user', content: 'سلام' }] })
    const first = await ask()
    expect(first.status).toBe(503)
    expect(first.body.error).toMatchObject({ code: 'model_too_large', type: 'service_unavailable_error', param: 'model' })
    expect(first.body.error.message).toMatch(/more than the server's memory budget of 250 MiB/)
    expect(first.headers['x-should-retry']).toBe('false')
    const second = await ask()
    expect(second.body.error.code).toBe('model_too_large')
    const gemma3 = await stateOf(service, 'gemma3')
    expect(gemma3).toMatchObject({ state: 'failed', memoryBytes: 0 })
    expect(gemma3.estimatedMemoryBytes).toBeGreaterThan(250 * MiB) // its real size, learnt from the one load
    const metrics = (await request(service.app).get('/metrics')).text
    expect(metricValue(metrics, 'llm_model_load_failures_total{model="gemma3"}')).toBe(1)
    expect((await request(service.app).post('/api/chat').send({ message: 'سلام', model: 'smollm2' })).status).toBe(200)
  })

  test('a model that fails to load: 503 model_not_loaded, /health degraded (200) with the reason but no path; others work', async () => {
    const res = await request(service.app).post('/api/chat').send({ message: 'سلام', model: 'broken' })
    expect(res.status).toBe(503)
    expect(res.body.error.code).toBe('model_not_loaded')
    expect(res.body.error.message).not.toContain(path.dirname(broken))
    const h = await request(service.app).get('/health')
    expect(h.status).toBe(200)
    expect(h.body.status).toBe('degraded')
    const entry = h.body.models.find((m: { name: string }) => m.name === 'broken')
    expect(entry.state).toBe('failed')
    expect(entry.error).toEqual(expect.any(String))
    expect(JSON.stringify(h.body)).not.toContain(path.dirname(broken))
    expect((await request(service.app).post('/api/chat').send({ message: 'سلام' })).status).toBe(200)
  })
})

describe('a model on a remote llama-server', () => {
  let server: LlamaServer
  let service: TestService

  beforeAll(async () => {
    server = await startLlamaServer(SMOLLM2, ['-c', '1024'])
    const file = modelsFile({ models: [{ name: 'local', path: 'smollm2' }, { name: 'remote', backends: [server.url] }] })
    service = await startTestService(multiModelEnv(file, { LLM_MEMORY_BUDGET: '200MiB' }))
  })

  afterAll(async () => {
    await service?.close()
    await server?.stop()
  })

  test('an entry with backends is served by that server, under its configured name, and holds none of the budget', async () => {
    expect((await request(service.app).post('/api/chat').send({ message: 'سلام', model: 'local' })).status).toBe(200)
    const res = await request(service.app).post('/v1/chat/completions').send({ model: 'remote', messages: [{ role: 'user', content: 'سلام' }], max_tokens: 8 })
    expect(res.status).toBe(200)
    expect(res.body.model).toBe('remote')
    expect(res.body.choices[0].message.content.length).toBeGreaterThan(0)
    const h = await health(service)
    const remote = h.models.find((m: { name: string }) => m.name === 'remote')
    expect(remote).toMatchObject({ state: 'loaded', memoryBytes: 0 })
    expect(remote.backends).toHaveLength(1)
    // Both are loaded: the remote model took nothing from the local one's budget.
    expect((await stateOf(service, 'local')).state).toBe('loaded')
    const metrics = (await request(service.app).get('/metrics')).text
    expect(metrics).toMatch(/^llm_backend_requests_total\{model="remote",backend="[^"]+"\} 1$/m)
  })
})

describe('the models file and the new variables are checked at start', () => {
  const entry = { name: 'smollm2', path: 'smollm2' }
  const config = (content: unknown, env: Record<string, string> = {}) => testConfig(multiModelEnv(modelsFile(content), env))
  const cases: [string, unknown, Record<string, string>, RegExp][] = [
    ['not JSON', '{"models": [', {}, /is not valid JSON/],
    ['no models', { models: [] }, {}, /models: must list at least one model/],
    ['no name', { models: [{ path: 'smollm2' }] }, {}, /models\[0\]\.name/],
    ['a name that cannot be a label', { models: [{ name: 'a b', path: 'smollm2' }] }, {}, /models\[0\]\.name: must be 1 to 64 letters/],
    ['neither path nor backends', { models: [{ name: 'x' }] }, {}, /models\[0\]: needs either path .* or backends/],
    ['both path and backends', { models: [{ name: 'x', path: 'smollm2', backends: ['http://127.0.0.1:1'] }] }, {}, /needs either path/],
    ['a backend that is not a URL', { models: [{ name: 'x', backends: ['ftp://host'] }] }, {}, /models\[0\]\.backends\[0\]: must be an http or https URL/],
    ['an unknown field', { models: [{ ...entry, contxtSize: 512 }] }, {}, /models\[0\]\.contxtSize: not a known field/],
    ['a bad option value', { models: [{ ...entry, temperature: 3 }] }, {}, /models\[0\]\.temperature/],
    ['two entries with one name', { models: [entry, entry] }, {}, /models\[1\]\.name: "smollm2" is used by an earlier entry/],
    ['two defaults', { models: [{ ...entry, default: true }, { name: 'g', path: 'gemma3', default: true }] }, {}, /more than one entry says default: true/],
    ['a missing file', { models: [{ name: 'x', path: 'nowhere.gguf' }] }, {}, /models\[0\]\.path: no model file at .*nowhere\.gguf/],
    ['a missing chat template file', { models: [{ ...entry, chatTemplate: 'nowhere.jinja' }] }, {}, /models\[0\]\.chatTemplate=nowhere\.jinja: cannot read the template file/],
    ['a model whose file alone exceeds the budget', { models: [entry, { name: 'gemma3', path: 'gemma3' }] }, { LLM_MEMORY_BUDGET: '200MiB' }, /model "gemma3" is 241\.4 MiB on disk, more than LLM_MEMORY_BUDGET \(200 MiB\)/],
    ['LLM_MODEL_PATH as well', { models: [entry] }, { LLM_MODEL_PATH: SMOLLM2 }, /LLM_MODELS_FILE and LLM_MODEL_PATH are both set/],
    ['LLM_BACKENDS as well', { models: [entry] }, { LLM_BACKENDS: 'http://127.0.0.1:1' }, /LLM_MODELS_FILE and LLM_BACKENDS are both set/],
    ['a budget that is not a size', { models: [entry] }, { LLM_MEMORY_BUDGET: 'lots' }, /LLM_MEMORY_BUDGET must be a size/],
    ['a negative TTL', { models: [entry] }, { LLM_MODEL_IDLE_TTL_MS: '-1' }, /LLM_MODEL_IDLE_TTL_MS must be an integer/],
  ]
  test.each(cases)('%s', (_name, content, env, message) => {
    expect(() => config(content, env)).toThrow(ConfigError)
    expect(() => config(content, env)).toThrow(message)
  })

  test('an unreadable file is named', () => {
    expect(() => testConfig(multiModelEnv('/nowhere/models.json'))).toThrow(/LLM_MODELS_FILE \(\/nowhere\/models\.json\) cannot be read/)
  })

  test('paths are relative to the models file; the first entry is the default unless one says so; options are kept', () => {
    const file = modelsFile({ models: [{ name: 'a', path: 'smollm2', temperature: 0.2, contextSize: 512 }, { name: 'b', path: 'local.gguf' }] })
    fs.symlinkSync(SMOLLM2, path.join(path.dirname(file), 'local.gguf'))
    const { models, memoryBudgetBytes, modelIdleTtlMs } = testConfig(multiModelEnv(file))
    expect(models!.map((m) => [m.name, m.isDefault])).toEqual([['a', true], ['b', false]])
    expect(models![1].source).toEqual({ kind: 'file', file: path.join(path.dirname(file), 'local.gguf'), sizeBytes: fs.statSync(SMOLLM2).size })
    expect(models![0]).toMatchObject({ temperature: 0.2, contextSize: 512 })
    expect(memoryBudgetBytes).toBeGreaterThan(0) // a share of this machine's memory
    expect(modelIdleTtlMs).toBe(300_000)
    // The example file shipped with the service is valid.
    const example = testConfig(multiModelEnv(path.join(__dirname, '..', 'models.example.json')))
    expect(example.models!.length).toBeGreaterThanOrEqual(2)
  })

  test("a chat template file is read at start from the models file's folder, whatever the working directory", () => {
    const file = modelsFile({ models: [{ ...entry, chatTemplate: 'templates/mine.jinja' }, { name: 'shipped', path: 'smollm2', chatTemplate: 'chatml-tools' }, { name: 'own', path: 'smollm2' }] })
    const source = "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}{% endfor %}<|assistant|>"
    fs.mkdirSync(path.join(path.dirname(file), 'templates'))
    fs.writeFileSync(path.join(path.dirname(file), 'templates', 'mine.jinja'), source)
    expect(process.cwd()).not.toBe(path.dirname(file))
    const config = testConfig(multiModelEnv(file, { LLM_CHAT_TEMPLATE: 'chatml' }))
    const [mine, shipped, own] = config.models!
    expect(mine.chatTemplate).toBe(source)
    expect(shipped.chatTemplate).toMatch(/<tool_call>/)
    expect(own.chatTemplate).toBeUndefined()
    // What the engine is loaded with: the entry's template, else the service's.
    expect(engineLoadOptions(config, SMOLLM2, mine).chatTemplate).toBe(source)
    expect(engineLoadOptions(config, SMOLLM2, own).chatTemplate).toBe('chatml')
  })

  test('LLM_MEMORY_BUDGET sizes', () => {
    expect(parseBytes('8GiB')).toBe(8 * 1024 ** 3)
    expect(parseBytes('512MiB')).toBe(512 * MiB)
    expect(parseBytes('1.5 GB')).toBe(1.5e9)
    expect(parseBytes('1048576')).toBe(MiB)
    expect(parseBytes('12 parsecs')).toBeNull()
    expect(testConfig(multiModelEnv(modelsFile({ models: [entry] }), { LLM_MEMORY_BUDGET: '512MiB' })).memoryBudgetBytes).toBe(512 * MiB)
  })
})
