// Tool calls and reasoning over /v1/chat/completions, driven by the official openai client:
// SmolLM2 loaded with napi-llama's shipped ChatML templates (LLM_CHAT_TEMPLATE), greedy.
import OpenAI from 'openai'
import path from 'node:path'
import { startTestService, type TestService } from './helpers'

const MODELS_DIR = process.env.NAPI_LLAMA_MODELS_DIR || path.join(__dirname, '..', '..', '..', 'models')
const SMOLLM2 = path.join(MODELS_DIR, 'SmolLM2-135M-Instruct.Q4_1.gguf')

const TOOLS: OpenAI.Chat.Completions.ChatCompletionTool[] = [
  {
    type: 'function',
    function: {
      name: 'get_weather',
      description: 'The weather in a city',
      parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
    },
  },
  {
    type: 'function',
    function: {
      name: 'add',
      description: 'Adds two numbers',
      parameters: { type: 'object', properties: { a: { type: 'number' }, b: { type: 'number' } }, required: ['a', 'b'] },
    },
  },
]
const ASK: OpenAI.Chat.Completions.ChatCompletionMessageParam[] = [{ role: 'user', content: 'هوای تهران چطور است؟' }]

async function post(service: TestService, body: unknown) {
  const res = await fetch(`${service.url}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as Record<string, any> }
}

describe('tool calls', () => {
  let service: TestService
  let client: OpenAI

  beforeAll(async () => {
    service = await startTestService({ LLM_MODEL_PATH: SMOLLM2, LLM_CHAT_TEMPLATE: 'chatml-tools', LLM_CONTEXT_SIZE: '2048', LLM_MAX_TOKENS: '120' })
    client = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: 'unused', maxRetries: 0 })
  })

  afterAll(async () => {
    await service.close()
  })

  test("chat.completions.create({ tools, tool_choice: 'required' }) returns parsed tool_calls", async () => {
    const result = await client.chat.completions.create({ model: 'any', messages: ASK, tools: TOOLS, tool_choice: 'required' })
    const choice = result.choices[0]
    expect(choice.finish_reason).toBe('tool_calls')
    expect(choice.message.content).toBeNull()
    const calls = choice.message.tool_calls!
    expect(calls).toHaveLength(1)
    const call = calls[0] as OpenAI.Chat.Completions.ChatCompletionMessageFunctionToolCall
    expect(call.type).toBe('function')
    expect(call.id).toMatch(/^call_/)
    expect(['get_weather', 'add']).toContain(call.function.name)
    expect(typeof JSON.parse(call.function.arguments)).toBe('object')
  })

  test('a streamed call: id, type and name on the first delta, then argument fragments; finish_reason tool_calls', async () => {
    const stream = await client.chat.completions.create({
      model: 'any',
      messages: ASK,
      tools: TOOLS,
      tool_choice: { type: 'function', function: { name: 'get_weather' } },
      stream: true,
    })
    const deltas: OpenAI.Chat.Completions.ChatCompletionChunk.Choice.Delta.ToolCall[] = []
    let content = ''
    let finish: string | null = null
    for await (const chunk of stream) {
      const choice = chunk.choices[0]
      if (!choice) continue
      content += choice.delta.content ?? ''
      deltas.push(...(choice.delta.tool_calls ?? []))
      finish = choice.finish_reason ?? finish
    }
    expect(finish).toBe('tool_calls')
    expect(content).toBe('')
    expect(deltas.length).toBeGreaterThan(1)
    expect(deltas[0]).toMatchObject({ index: 0, type: 'function', function: { name: 'get_weather' } })
    expect(deltas[0].id).toMatch(/^call_/)
    expect(deltas.slice(1).every((d) => d.id === undefined && d.function?.name === undefined)).toBe(true)
    const args = JSON.parse(deltas.map((d) => d.function?.arguments ?? '').join(''))
    expect(typeof args.city).toBe('string')
  })

  test("the tool's answer goes back as a tool message, and the model answers in text", async () => {
    const first = await client.chat.completions.create({ model: 'any', messages: ASK, tools: TOOLS, tool_choice: { type: 'function', function: { name: 'get_weather' } } })
    const call = first.choices[0].message.tool_calls![0]
    const result = await client.chat.completions.create({
      model: 'any',
      messages: [
        ...ASK,
        { role: 'assistant', content: null, tool_calls: [call] },
        { role: 'tool', tool_call_id: call.id, content: '{"sky": "آفتابی", "temperature": 31}' },
      ],
      tools: TOOLS,
      tool_choice: 'none',
      max_tokens: 16,
    })
    expect(result.choices[0].message.content!.length).toBeGreaterThan(0)
    expect(result.choices[0].message.tool_calls).toBeUndefined()
  })

  test('bad tools and tool history are 400s naming the problem; the next request works', async () => {
    const bad = [
      { tools: [{ type: 'function', function: { description: 'no name' } }] },
      { tools: [{ type: 'function', function: { name: 'x', parameters: { type: 'string' } } }] },
      { tools: TOOLS, tool_choice: { type: 'function', function: { name: 'nope' } } },
      { tools: TOOLS, messages: [...ASK, { role: 'tool', tool_call_id: 'call_unknown', content: '1' }] },
    ]
    for (const body of bad) {
      const res = await post(service, { messages: ASK, ...body })
      expect(res.status).toBe(400)
      expect(res.body.error.type).toBe('invalid_request_error')
    }
    const ok = await post(service, { messages: ASK, max_tokens: 4 })
    expect(ok.status).toBe(200)
  })
})

describe('reasoning', () => {
  let service: TestService

  beforeAll(async () => {
    service = await startTestService({ LLM_MODEL_PATH: SMOLLM2, LLM_CHAT_TEMPLATE: 'chatml-thinking', LLM_MAX_TOKENS: '24' })
  })

  afterAll(async () => {
    await service.close()
  })

  test('reasoning_content comes apart from the content, in messages and in stream deltas', async () => {
    const res = await post(service, { messages: ASK, max_tokens: 24 })
    expect(res.status).toBe(200)
    const message = res.body.choices[0].message
    expect(typeof message.reasoning_content).toBe('string')
    expect(message.reasoning_content.length).toBeGreaterThan(0)
    expect(message.content ?? '').not.toMatch(/<\/?think>/)

    const client = new OpenAI({ baseURL: `${service.url}/v1`, apiKey: 'unused', maxRetries: 0 })
    const stream = await client.chat.completions.create({ model: 'any', messages: ASK, max_tokens: 24, stream: true })
    let reasoning = ''
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta as { reasoning_content?: string } | undefined
      reasoning += delta?.reasoning_content ?? ''
    }
    expect(reasoning).toBe(message.reasoning_content)
  })
})
