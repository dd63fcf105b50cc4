// One model (LLM_MODEL_PATH, LLM_BACKENDS) is a one-entry registry: its model is an engine of its
// own (Engine.load, or a pool), never napi-llama's module-level default engine; it is loaded at
// start and kept, and requests that come while it loads are refused at once.
import fs from 'node:fs'
import path from 'node:path'
import request from 'supertest'
import { health as defaultEngineHealth } from 'napi-llama'
import { startLlamaServer, type LlamaServer } from '../../../__test__/llama-server'
import { envModelSpec } from '../src/multi-model/env-model'
import { type TestService, startTestService, testConfig } from './helpers'

const MODELS_DIR = process.env.NAPI_LLAMA_MODELS_DIR || path.join(__dirname, '..', '..', '..', 'models')
const SMOLLM2 = path.join(MODELS_DIR, 'SmolLM2-135M-Instruct.Q4_1.gguf')

const chat = (service: TestService) => request(service.app).post('/api/chat').send({ message: 'سلام' })

/** A stand-in for the first-start download the server runs before the load, held until `finish`. */
function heldDownload() {
  let finish!: () => void
  const done = new Promise<void>((resolve) => (finish = resolve))
  return { prepare: () => done, finish }
}

describe('the entry LLM_MODEL_PATH and LLM_BACKENDS stand for', () => {
  test('a model file: loaded at start, kept, with the service settings (none of its own)', () => {
    const config = testConfig()
    const spec = envModelSpec(config)
    expect(spec).toEqual({
      name: path.basename(config.modelPath, '.gguf'),
      default: true,
      isDefault: true,
      loadAtStart: true,
      idleTtlMs: 0,
      source: { kind: 'file', file: config.modelPath, sizeBytes: fs.statSync(config.modelPath).size },
    })
  })

  test('servers only: a pool over them, named once connected; servers and local: the file pooled with them, in order', () => {
    const remote = envModelSpec(testConfig({ LLM_BACKENDS: 'http://10.0.0.1:8080, http://10.0.0.2:8080' }))
    expect(remote).toMatchObject({ name: 'remote', source: { kind: 'remote', urls: ['http://10.0.0.1:8080', 'http://10.0.0.2:8080'] } })
    const config = testConfig({ LLM_BACKENDS: 'http://10.0.0.1:8080,local' })
    expect(envModelSpec(config).source).toEqual({
      kind: 'pool',
      file: config.modelPath,
      sizeBytes: fs.statSync(config.modelPath).size,
      backends: [{ kind: 'remote', url: 'http://10.0.0.1:8080' }, { kind: 'local' }],
    })
  })

  test('the default model before its first-start download: size 0 until it is there', () => {
    const missing = path.join(MODELS_DIR, 'not-fetched-yet.gguf')
    const spec = envModelSpec({ ...testConfig(), modelPath: missing })
    expect(spec.source).toEqual({ kind: 'file', file: missing, sizeBytes: 0 })
  })
})

describe('one model at run time', () => {
  test("its replies come from an engine of its own: napi-llama's default engine stays unloaded", async () => {
    const service = await startTestService()
    try {
      expect(service.llm.registry).toBeNull()
      expect((await chat(service)).status).toBe(200)
      expect(defaultEngineHealth().status).toBe('unloaded')
      expect(service.llm.metrics()!.requestsCompleted).toBe(1)
    } finally {
      await service.close()
    }
    expect(service.llm.state).toBe('stopped')
    expect(service.llm.metrics()).toBeNull()
  })

  test('while it loads, /health says loading and requests are refused at once; then they are served', async () => {
    const service = await startTestService({}, false)
    try {
      const download = heldDownload()
      const loading = service.llm.start(download.prepare)
      const health = await request(service.app).get('/health')
      expect(health.status).toBe(503)
      expect(health.body).toMatchObject({ status: 'loading', modelLoaded: false, slotsTotal: 0 })
      expect(health.headers['retry-after']).toBe('5')
      const refused = await chat(service)
      expect(refused.status).toBe(503)
      expect(refused.body.error).toMatchObject({ code: 'model_not_loaded', message: expect.stringMatching(/still loading/) })
      expect(refused.headers['retry-after']).toBe('5')
      download.finish()
      expect((await loading)!.parallel).toBe(4)
      expect((await chat(service)).status).toBe(200)
    } finally {
      await service.close()
    }
  })

  test('stopped while it loads: the start ends with aborted and the service is stopped', async () => {
    const service = await startTestService({}, false)
    const download = heldDownload()
    const loading = service.llm.start(download.prepare)
    const closing = service.close()
    download.finish()
    await expect(loading).rejects.toMatchObject({ code: 'aborted' })
    await closing
    expect(service.llm.state).toBe('stopped')
    expect(service.llm.health()).toBeNull()
    expect((await request(service.app).get('/health')).body.status).toBe('unloaded')
  })
})

describe('LLM_BACKENDS=local,URL: this process and a llama-server in one pool', () => {
  let server: LlamaServer
  let service: TestService

  beforeAll(async () => {
    server = await startLlamaServer(SMOLLM2, ['-c', '1024'])
    service = await startTestService({ LLM_MODEL_PATH: SMOLLM2, LLM_BACKENDS: `local,${server.url}` })
  })

  afterAll(async () => {
    await service?.close()
    await server?.stop()
  })

  test('both backends are up and named in /health and /metrics; replies are served under the file name', async () => {
    const health = await request(service.app).get('/health')
    expect(health.status).toBe(200)
    expect(health.body.model).toBe('SmolLM2-135M-Instruct.Q4_1')
    expect(health.body.backends).toHaveLength(2)
    expect(health.body.backends.every((b: { ready: boolean }) => b.ready)).toBe(true)
    const res = await request(service.app).post('/v1/chat/completions').send({ messages: [{ role: 'user', content: 'سلام' }] })
    expect(res.status).toBe(200)
    expect(res.body.model).toBe('SmolLM2-135M-Instruct.Q4_1')
    const metrics = (await request(service.app).get('/metrics')).text
    expect(metrics.match(/^llm_backend_up\{backend="[^"]+"\} 1$/gm)).toHaveLength(2)
    expect(defaultEngineHealth().status).toBe('unloaded')
  })
})
