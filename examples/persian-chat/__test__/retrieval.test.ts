// POST /v1/embeddings and /v1/rerank against real engines: all-MiniLM-L6-v2 as the embedding
// model and, through the test-only fault `rank:1`, SmolLM2 as a stand-in reranker (no reranker
// GGUF is available to the tests, so its scores carry no meaning; the shapes and order rules do).
import OpenAI from 'openai'
import path from 'node:path'
import { ConfigError } from '../src/config'
import { startTestService, testConfig, type TestService } from './helpers'

const MODELS_DIR = process.env.NAPI_LLAMA_MODELS_DIR || path.join(__dirname, '..', '..', '..', 'models')
const SMOLLM2 = path.join(MODELS_DIR, 'SmolLM2-135M-Instruct.Q4_1.gguf')

async function post(service: TestService, route: string, body: unknown) {
  const res = await fetch(`${service.url}/v1/${route}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

describe('retrieval endpoints', () => {
  let service: TestService
  let client: OpenAI

  beforeAll(async () => {
    service = await startTestService({ LLM_EMBEDDING_MODEL: 'minilm', LLM_RERANK_MODEL: SMOLLM2, NAPI_LLAMA_FAULTS: 'rank:1' }, false)
    client = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  })

  afterAll(async () => {
    await service.close()
  })

  test('the openai client gets one vector of the model\'s length per input', async () => {
    const input = ['A man is eating food.', 'A man is eating a piece of bread.', 'The new movie is awesome.']
    const result = await client.embeddings.create({ model: 'any', input })
    expect(result.data).toHaveLength(3)
    result.data.forEach((d, i) => {
      expect(d.index).toBe(i)
      expect(d.embedding).toHaveLength(384)
    })
    const dot = (a: number[], b: number[]) => a.reduce((s, v, i) => s + v * b[i], 0)
    const [food, bread, movie] = result.data.map((d) => d.embedding)
    expect(dot(food, bread)).toBeGreaterThan(dot(food, movie) + 0.4)
    expect(result.model).toBe('all-MiniLM-L6-v2.f32')
    expect(result.usage.prompt_tokens).toBeGreaterThan(0)
    expect(result.usage.total_tokens).toBe(result.usage.prompt_tokens)
  })

  test('a string input, float and base64 encodings of the same vector', async () => {
    const float = await post(service, 'embeddings', { input: 'hello', encoding_format: 'float' })
    expect(float.status).toBe(200)
    expect(float.body.object).toBe('list')
    expect(float.body.data[0].object).toBe('embedding')
    const vector: number[] = float.body.data[0].embedding
    const norm = Math.sqrt(vector.reduce((s, v) => s + v * v, 0))
    expect(norm).toBeCloseTo(1, 4)
    const encoded = await post(service, 'embeddings', { input: 'hello', encoding_format: 'base64' })
    const bytes = Buffer.from(encoded.body.data[0].embedding as string, 'base64')
    const decoded = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4)
    expect(decoded).toHaveLength(vector.length)
    decoded.forEach((v, i) => expect(v).toBeCloseTo(vector[i], 6))
  })

  test.each([
    [{ input: [] }, 'input'],
    [{ input: [1, 2, 3] }, 'input'],
    [{ input: ['ok', ''] }, 'input[1]'],
    [{ input: 'x', dimensions: 64 }, 'dimensions'],
    [{ input: 'x', encoding_format: 'int8' }, 'encoding_format'],
    [{ input: 'x', logit_bias: {} }, 'logit_bias'],
  ])('bad embeddings request %j is a 400 naming %s', async (body, param) => {
    const res = await post(service, 'embeddings', body)
    expect(res.status).toBe(400)
    expect(res.body.error).toMatchObject({ type: 'invalid_request_error', param })
  })

  test('rerank: results by relevance with their input index, top_n and documents on request', async () => {
    const documents = ['A cat is a small animal.', 'The stock market fell.', 'Cats like milk.']
    const all = await post(service, 'rerank', { query: 'What is a cat?', documents })
    expect(all.status).toBe(200)
    expect(all.body.results).toHaveLength(3)
    expect(all.body.results.map((r: { index: number }) => r.index).sort()).toEqual([0, 1, 2])
    const scores = all.body.results.map((r: { relevance_score: number }) => r.relevance_score)
    expect([...scores].sort((a, b) => b - a)).toEqual(scores)
    expect(all.body.usage.prompt_tokens).toBeGreaterThan(0)
    const top = await post(service, 'rerank', { query: 'What is a cat?', documents, top_n: 1, return_documents: true })
    expect(top.body.results).toHaveLength(1)
    expect(top.body.results[0].index).toBe(all.body.results[0].index)
    expect(top.body.results[0].document).toEqual({ text: documents[top.body.results[0].index] })
  })

  test('bad rerank requests are 400s naming the field', async () => {
    expect((await post(service, 'rerank', { documents: ['d'] })).body.error.param).toBe('query')
    expect((await post(service, 'rerank', { query: 'q', documents: [] })).body.error.param).toBe('documents')
    expect((await post(service, 'rerank', { query: 'q', documents: ['d'], top_n: 0 })).body.error.param).toBe('top_n')
    expect((await post(service, 'rerank', { query: 'q', documents: ['d'], return_documents: 'yes' })).body.error.param).toBe('return_documents')
  })
})

describe('retrieval endpoints not configured', () => {
  let service: TestService

  beforeAll(async () => {
    service = await startTestService({}, false)
  })

  afterAll(async () => {
    await service.close()
  })

  test('embeddings and rerank answer 501 naming the setting', async () => {
    const embeddings = await post(service, 'embeddings', { input: 'x' })
    expect(embeddings.status).toBe(501)
    expect(embeddings.body.error.message).toContain('LLM_EMBEDDING_MODEL')
    const rerank = await post(service, 'rerank', { query: 'q', documents: ['d'] })
    expect(rerank.status).toBe(501)
    expect(rerank.body.error.message).toContain('LLM_RERANK_MODEL')
  })
})

describe('retrieval models that cannot serve', () => {
  let service: TestService
  let logged: string[]
  let restore: () => void

  beforeAll(async () => {
    // SmolLM2 is not a reranker: its load is refused (no test fault here).
    service = await startTestService({ LLM_RERANK_MODEL: SMOLLM2 }, false)
    logged = []
    const original = console.error
    console.error = (...args: unknown[]) => void logged.push(args.join(' '))
    restore = () => (console.error = original)
  })

  afterAll(async () => {
    restore()
    await service.close()
  })

  test('a missing model file stops the start, naming the variable', () => {
    expect(() => testConfig({ LLM_EMBEDDING_MODEL: '/nowhere/model.gguf' })).toThrow(ConfigError)
    expect(() => testConfig({ LLM_EMBEDDING_MODEL: '/nowhere/model.gguf' })).toThrow(/LLM_EMBEDDING_MODEL/)
    expect(() => testConfig({ LLM_EMBEDDING_POOLING: 'rank' })).toThrow(/LLM_EMBEDDING_POOLING/)
  })

  test('a model that fails to load is a 503 without paths, logged, and not reloaded on every request', async () => {
    const first = await post(service, 'rerank', { query: 'q', documents: ['d'] })
    expect(first.status).toBe(503)
    expect(first.body.error.code).toBe('model_not_loaded')
    expect(first.body.error.message).not.toContain('/')
    expect(logged.join('\n')).toContain('LLM_RERANK_MODEL')
    const failures = logged.length
    const second = await post(service, 'rerank', { query: 'q', documents: ['d'] })
    expect(second.status).toBe(503)
    expect(logged.length).toBe(failures)
  })
})
