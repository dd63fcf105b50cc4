// The official `openai` npm client, unchanged, against the running server (real HTTP, real
// model). One suite, run on each way the service can generate replies: in this process
// (openai.test.ts) and through LLM_BACKENDS on llama-servers (openai-backends.test.ts).
import OpenAI from 'openai'
import request from 'supertest'
import { PERSIAN, type TestService, startTestService } from './helpers'

/** The suite's service settings; `env` adds the backend under test. */
export function startSuiteService(env: Record<string, string> = {}): Promise<TestService> {
  return startTestService({ LLM_MAX_TOKENS: '24', LLM_CONTEXT_SIZE: '512', API_KEY: 'test-key-123', ...env })
}

export function openaiClientSuite(start: () => Promise<TestService>): void {
  let service: TestService
  let client: OpenAI

  beforeAll(async () => {
    service = await start()
    client = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: 'test-key-123', maxRetries: 0, timeout: 60_000 })
  })

  afterAll(async () => {
    await service?.close()
  })

  test('models.list and models.retrieve report the loaded model', async () => {
    const models = await client.models.list()
    expect(models.data.map((m) => m.id)).toEqual(['gemma-3-270m-q4_k_m'])
    const model = await client.models.retrieve('gemma-3-270m-q4_k_m')
    expect(model.owned_by).toBe('napi-llama')
    await expect(client.models.retrieve('gpt-4o')).rejects.toMatchObject({ status: 404, code: 'model_not_found' })
  })

  test('chat.completions.create (non-streaming): content, usage, finish_reason', async () => {
    const completion = await client.chat.completions.create({
      model: 'gemma-3-270m-q4_k_m',
      messages: [{ role: 'user', content: 'سلام! یک جمله به فارسی بگو.' }],
      max_tokens: 12,
      temperature: 0,
    })
    expect(completion.object).toBe('chat.completion')
    expect(completion.id).toMatch(/^chatcmpl-/)
    expect(completion.choices).toHaveLength(1)
    const choice = completion.choices[0]
    expect(choice.message.role).toBe('assistant')
    expect(choice.message.content!.length).toBeGreaterThan(0)
    expect(['stop', 'length']).toContain(choice.finish_reason)
    expect(completion.usage!.completion_tokens).toBeLessThanOrEqual(12)
    expect(completion.usage!.total_tokens).toBe(completion.usage!.prompt_tokens + completion.usage!.completion_tokens)
    if (completion.usage!.completion_tokens === 12) expect(choice.finish_reason).toBe('length')
  })

  test('chat.completions.create (streaming): deltas join to Persian text, then finish_reason and usage', async () => {
    const stream = await client.chat.completions.create({
      model: 'gemma-3-270m-q4_k_m',
      messages: [
        { role: 'system', content: 'همیشه به فارسی پاسخ بده.' },
        { role: 'user', content: 'دربارهٔ اصفهان بگو.' },
      ],
      max_tokens: 20,
      stream: true,
      stream_options: { include_usage: true },
    })
    let text = ''
    let finish: string | null = null
    let usage: OpenAI.CompletionUsage | null | undefined = null
    let chunks = 0
    for await (const chunk of stream) {
      chunks++
      expect(chunk.object).toBe('chat.completion.chunk')
      if (chunk.choices[0]?.delta?.content) text += chunk.choices[0].delta.content
      if (chunk.choices[0]?.finish_reason) finish = chunk.choices[0].finish_reason
      if (chunk.usage) usage = chunk.usage
    }
    expect(chunks).toBeGreaterThan(2)
    expect(text).toMatch(PERSIAN)
    expect(text).not.toContain('\uFFFD')
    expect(['stop', 'length']).toContain(finish)
    expect(usage!.completion_tokens).toBeGreaterThan(0)
  })

  test('max_tokens above LLM_MAX_TOKENS is capped', async () => {
    const completion = await client.chat.completions.create({
      model: 'any',
      messages: [{ role: 'user', content: 'یک داستان بلند بنویس.' }],
      max_tokens: 5000,
      temperature: 0,
    })
    expect(completion.usage!.completion_tokens).toBeLessThanOrEqual(24)
  })

  test('stop sequences, seed and json response_format are honoured', async () => {
    const seeded = (seed: number) =>
      client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'یک کلمه بگو' }], seed, max_tokens: 8, temperature: 1 })
    const [a, b] = [await seeded(7), await seeded(7)]
    expect(a.choices[0].message.content).toBe(b.choices[0].message.content)

    const json = await client.chat.completions.create({
      model: 'm',
      messages: [{ role: 'user', content: 'Give a JSON object with a name.' }],
      response_format: { type: 'json_schema', json_schema: { name: 'person', schema: { type: 'object', properties: { name: { type: 'string', maxLength: 5 } }, required: ['name'] } } },
      max_tokens: 24,
      temperature: 0,
    })
    if (json.choices[0].finish_reason === 'stop') expect(() => JSON.parse(json.choices[0].message.content!)).not.toThrow()
    expect(json.choices[0].message.content!.trim().startsWith('{')).toBe(true)
  })

  test('errors arrive as OpenAI APIError subclasses with status, type and code', async () => {
    await expect(
      client.chat.completions.create({ model: 'm', messages: [], max_tokens: 4 }),
    ).rejects.toBeInstanceOf(OpenAI.BadRequestError)

    const overflow = client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'سلام دنیا '.repeat(400) }] })
    await expect(overflow).rejects.toBeInstanceOf(OpenAI.BadRequestError)
    await expect(overflow).rejects.toMatchObject({ status: 400, code: 'context_length_exceeded', type: 'invalid_request_error' })

    const noKey = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: 'wrong', maxRetries: 0 })
    await expect(noKey.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'سلام' }] })).rejects.toBeInstanceOf(
      OpenAI.AuthenticationError,
    )

    await expect(
      client.chat.completions.create({ model: 'm', messages: [{ role: 'user', content: 'x' }], logit_bias: { '1': 5 } }),
    ).rejects.toMatchObject({ status: 400, code: 'unsupported_parameter' })
  })

  test('an aborted streaming request from the client cancels its generation', async () => {
    const before = service.llm.metrics()!.requestsAborted
    const controller = new AbortController()
    const stream = await client.chat.completions.create(
      { model: 'm', messages: [{ role: 'user', content: 'یک داستان بلند بنویس.' }], stream: true, max_tokens: 24 },
      { signal: controller.signal },
    )
    try {
      for await (const _chunk of stream) controller.abort()
    } catch {
      // the client may end the loop quietly or with an abort error, depending on timing
    }
    const deadline = Date.now() + 10_000
    while (service.llm.metrics()!.requestsAborted === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20))
    expect(service.llm.metrics()!.requestsAborted).toBe(before + 1)
  })

  describe('raw OpenAI wire format', () => {
    const auth = { Authorization: 'Bearer test-key-123' }

    test('error bodies are { error: { message, type, param, code } }', async () => {
      const res = await request(service.app).post('/v1/chat/completions').set(auth).send({ messages: [{ role: 'tool', content: 'x' }] })
      expect(res.status).toBe(400)
      expect(res.body).toEqual({
        error: { message: expect.stringMatching(/tool_call_id/), type: 'invalid_request_error', param: 'messages[0].tool_call_id', code: 'invalid_request' },
      })
    })

    test('content parts, developer role and n=1 are accepted; images and n>1 are not', async () => {
      const ok = await request(service.app)
        .post('/v1/chat/completions')
        .set(auth)
        .send({ n: 1, max_tokens: 4, messages: [{ role: 'developer', content: 'فارسی' }, { role: 'user', content: [{ type: 'text', text: 'سلام' }] }] })
      expect(ok.status).toBe(200)
      const image = await request(service.app)
        .post('/v1/chat/completions')
        .set(auth)
        .send({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] })
      expect(image.status).toBe(400)
      const many = await request(service.app).post('/v1/chat/completions').set(auth).send({ n: 2, messages: [{ role: 'user', content: 'x' }] })
      expect(many.status).toBe(400)
      expect(many.body.error.param).toBe('n')
    })

    test('what common clients send is accepted: empty tools, tool_choice none, null assistant content, 64-bit seeds', async () => {
      const res = await request(service.app)
        .post('/v1/chat/completions')
        .set(auth)
        .send({
          tools: [],
          tool_choice: 'none',
          seed: -9007199254740991,
          max_tokens: 4,
          messages: [
            { role: 'user', content: 'سلام' },
            { role: 'assistant', content: null },
            { role: 'user', content: 'سلام دوباره' },
          ],
        })
      expect(res.status).toBe(200)
    })

    test('the streaming wire format ends with data: [DONE]', async () => {
      const res = await request(service.app)
        .post('/v1/chat/completions')
        .set(auth)
        .send({ stream: true, max_tokens: 4, messages: [{ role: 'user', content: 'سلام' }] })
      expect(res.status).toBe(200)
      expect(res.headers['content-type']).toMatch(/^text\/event-stream/)
      const frames = res.text.split('\n\n').filter(Boolean)
      expect(frames[frames.length - 1]).toBe('data: [DONE]')
      const first = JSON.parse(frames[0].slice(6))
      expect(first.choices[0].delta).toEqual({ role: 'assistant', content: '' })
    })
  })
}
