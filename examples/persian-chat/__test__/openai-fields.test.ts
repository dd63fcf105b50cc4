// Which OpenAI request fields the service accepts, ignores or refuses (schemas.ts holds the
// lists), against the real model: a refused field is a 400 naming it, a harmless one changes
// nothing, and the next request still works.
import request from 'supertest'
import { IGNORED_OPENAI_FIELDS, UNSUPPORTED_OPENAI_FIELDS } from '../src/schemas'
import { type TestService, startTestService } from './helpers'

let service: TestService

beforeAll(async () => {
  service = await startTestService({ LLM_MAX_TOKENS: '8' })
})

afterAll(() => service.close())

const base = { messages: [{ role: 'user', content: 'سلام' }], max_tokens: 6, temperature: 0 }
const complete = (body: object) => request(service.app).post('/v1/chat/completions').send({ ...base, ...body })

/** A value of each refused field that asks for something the server cannot do. */
const REFUSED_VALUES: Record<string, unknown> = {
  functions: [{ name: 'f' }],
  function_call: { name: 'f' },
  n: 2,
  logprobs: true,
  top_logprobs: 3,
  logit_bias: { '50256': -100 },
  modalities: ['text', 'audio'],
  audio: { voice: 'alloy', format: 'wav' },
  prediction: { type: 'content', content: 'x' },
  reasoning_effort: 'high',
  verbosity: 'low',
  web_search_options: {},
}

test('every refused field has a test value here (the list in schemas.ts is the source)', () => {
  expect(Object.keys(REFUSED_VALUES).sort()).toEqual(Object.keys(UNSUPPORTED_OPENAI_FIELDS).sort())
})

test.each(Object.entries(REFUSED_VALUES))('%s that would change the reply: 400 unsupported_parameter naming it', async (field, value) => {
  const res = await complete({ [field]: value })
  expect(res.status).toBe(400)
  expect(res.body.error).toMatchObject({ type: 'invalid_request_error', code: 'unsupported_parameter', param: field })
  expect(res.body.error.message).toContain(`'${field}'`)
})

test('values that ask for nothing are accepted: n 1, logprobs false, empty tools and logit_bias, nulls', async () => {
  const res = await complete({
    n: 1,
    logprobs: false,
    top_logprobs: 0,
    tools: [],
    tool_choice: 'auto',
    parallel_tool_calls: false,
    logit_bias: {},
    modalities: ['text'],
    audio: null,
    reasoning_effort: null,
  })
  expect(res.status).toBe(200)
})

test('the harmless fields are accepted and change nothing', async () => {
  const plain = await complete({})
  const values: Record<string, unknown> = {
    user: 'user-42',
    metadata: { team: 'a' },
    store: false,
    service_tier: 'auto',
    safety_identifier: 'x',
    prompt_cache_key: 'k',
  }
  expect(Object.keys(values).sort()).toEqual([...IGNORED_OPENAI_FIELDS].sort())
  const labelled = await complete(values)
  expect(labelled.status).toBe(200)
  expect(labelled.body.choices[0].message.content).toBe(plain.body.choices[0].message.content)
})

test('an unknown field is a 400 unknown_parameter naming it', async () => {
  const res = await complete({ best_of: 3 })
  expect(res.status).toBe(400)
  expect(res.body.error).toMatchObject({ code: 'unknown_parameter', param: 'best_of', type: 'invalid_request_error' })
  expect(res.body.error.message).toMatch(/'best_of'/)
})

test.each([
  ['temperature out of range', { temperature: 3 }, 'temperature', /between 0 and 2/],
  ['max_tokens not an integer', { max_tokens: 1.5 }, 'max_tokens', /an integer/],
  ['stop with an empty string', { stop: [''] }, 'stop', /non-empty/],
  ['response_format of an unknown type', { response_format: { type: 'xml' } }, 'response_format.type', /'text', 'json_object' or 'json_schema'/],
  ['json_schema without a schema', { response_format: { type: 'json_schema', json_schema: { name: 'x' } } }, 'response_format.json_schema.schema', /JSON Schema object/],
  ['an image part', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:,' } }] }] }, 'messages[0].content[0]', /text part/],
  ['a prefill', { messages: [{ role: 'user', content: 'x' }, { role: 'assistant', content: 'y' }] }, 'messages', /prefill/],
  ['null content from the user', { messages: [{ role: 'user', content: null }] }, 'messages[0].content', /string or an array of text parts/],
])('%s: 400 naming the field', async (_name, body, param, message) => {
  const res = await complete(body)
  expect(res.status).toBe(400)
  expect(res.body.error.param).toBe(param)
  expect(res.body.error.message).toMatch(message)
  expect(res.body.error.code).toBe('invalid_request')
})

test('after all of that, a request works', async () => {
  const res = await complete({})
  expect(res.status).toBe(200)
  expect(res.body.choices[0].message.content.length).toBeGreaterThan(0)
})
