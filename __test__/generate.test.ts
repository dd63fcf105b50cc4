// Generation, streaming and tokenization on SmolLM2 through the default engine.
import * as llama from '../index'
import { SMOLLM2, FAST, LONG_PROMPT, collect } from './helpers'

beforeAll(async () => {
  const info = await llama.initialize({ modelPath: SMOLLM2, ...FAST })
  expect(info.chatTemplateSource).toBe('model')
  expect(info.chatTemplate).toBe('jinja')
  expect(info.contextSize).toBe(1024)
})

afterAll(async () => {
  await llama.shutdown()
})

const greedy = { temperature: 0, maxTokens: 32 }

test('chat messages are rendered with the model template and answered', async () => {
  const g = await llama.generate(
    [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'What is the capital of France?' },
    ],
    greedy,
  )
  expect(g.text.trim().length).toBeGreaterThan(0)
  // The template's own markers never reach the output.
  expect(g.text).not.toMatch(/<\|im_(start|end)\|>/)
  expect(['eos', 'length', 'stop']).toContain(g.finishReason)
  expect(g.completionTokens).toBeGreaterThan(0)
  expect(g.promptTokens).toBeGreaterThan(5)
  expect(g.requestId).toMatch(/\S/)
  expect(g.timings.ttftMs).toBeGreaterThan(0)
  expect(g.timings.tokensPerSecond).toBeGreaterThan(0)
})

test('a raw string is a completion prompt', async () => {
  const g = await llama.generate('The capital of France is', { ...greedy, maxTokens: 8 })
  expect(g.text).toMatch(/Paris/)
  expect(g.finishReason).toBe('length')
  expect(g.completionTokens).toBe(8)
})

test('the same seed gives the same output', async () => {
  const opts = { seed: 1234, temperature: 0.9, maxTokens: 24 }
  const a = await llama.generate('Write a sentence about the sea.', opts)
  const b = await llama.generate('Write a sentence about the sea.', opts)
  expect(a.text).toBe(b.text)
})

test('Persian: tokenize/detokenize is lossless', () => {
  const text = 'سلام، چطوری؟ امروز هوا خیلی خوب است. 🌞'
  const tokens = llama.tokenize(text)
  expect(tokens).toBeInstanceOf(Uint32Array)
  expect(llama.detokenize(Array.from(tokens))).toBe(text)
  expect(tokens.length).toBeGreaterThan(10)
  expect(llama.detokenize(tokens)).toBe(text)
})

test('Persian: streamed chunks are whole UTF-8 and concatenate to the generate text', async () => {
  const opts = { seed: 42, maxTokens: 64, temperature: 0.7 }
  const prompt = 'سلام، چطوری؟ من امروز'
  const streamed = await collect(llama.stream(prompt, opts))
  const generated = await llama.generate(prompt, opts)
  expect(streamed.text).toBe(generated.text)
  expect(streamed.final?.text).toBe(generated.text)
  let tokens = 0
  for (const c of streamed.chunks) {
    expect(c.text).not.toContain('\uFFFD')
    expect(Buffer.from(c.text, 'utf8').toString('utf8')).toBe(c.text)
    tokens += c.tokens
  }
  expect(tokens).toBe(generated.completionTokens)
  // SmolLM2 splits Persian letters across byte tokens: some chunk must cover several tokens.
  expect(streamed.chunks.some((c) => c.tokens > 1)).toBe(true)
})

test('stop strings split across tokens end generation and never leak', async () => {
  const prompt = 'List the days of the week: Monday, Tuesday,'
  const free = await collect(llama.stream(prompt, { ...greedy, maxTokens: 24 }))
  // A stop string made of the end of one token and the start of the next.
  const texts = free.chunks.filter((c) => !c.done).map((c) => c.text)
  const at = texts.findIndex((t, i) => i > 0 && t.length >= 2 && (texts[i + 1] ?? '').length >= 1)
  expect(at).toBeGreaterThan(0)
  const stop = texts[at].slice(-2) + texts[at + 1].slice(0, 2)
  const cut = free.text.indexOf(stop)
  expect(cut).toBeGreaterThanOrEqual(0)
  const stopped = await collect(llama.stream(prompt, { ...greedy, maxTokens: 24, stop: [stop] }))
  expect(stopped.final?.finishReason).toBe('stop')
  expect(stopped.text).toBe(free.text.slice(0, cut))
  expect(stopped.text).not.toContain(stop)
  const g = await llama.generate(prompt, { ...greedy, maxTokens: 24, stop: [stop] })
  expect(g.text).toBe(stopped.text)
})

test('the final stream chunk carries the Generation fields', async () => {
  const { chunks, final } = await collect(llama.stream('Hello', { ...greedy, maxTokens: 5 }))
  const last = chunks[chunks.length - 1]
  expect(last.done).toBe(true)
  if (!last.done) return
  expect(last.finishReason).toBe('length')
  expect(last.completionTokens).toBe(5)
  expect(last.text).toBe('')
  expect(final?.text.length).toBeGreaterThan(0)
})

test('breaking out of for-await stops generation', async () => {
  const before = llama.metrics()
  let n = 0
  for await (const chunk of llama.stream(LONG_PROMPT, { maxTokens: 400, seed: 1 })) {
    if (!chunk.done && ++n === 3) break
  }
  // The engine notices at its next step.
  for (let i = 0; i < 50 && llama.metrics().requestsActive > 0; i++) await new Promise((r) => setTimeout(r, 20))
  const after = llama.metrics()
  expect(after.requestsActive).toBe(0)
  expect(after.requestsAborted).toBe(before.requestsAborted + 1)
  expect(after.completionTokensTotal - before.completionTokensTotal).toBeLessThan(50)
})

test('grammar and jsonSchema constrain the output', async () => {
  const yn = await llama.generate([{ role: 'user', content: 'Is water wet? Answer yes or no.' }], {
    ...greedy,
    grammar: 'root ::= "yes" | "no"',
  })
  expect(['yes', 'no']).toContain(yn.text)
  const json = await llama.generate([{ role: 'user', content: 'Give a person as JSON.' }], {
    ...greedy,
    maxTokens: 60,
    jsonSchema: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'] },
  })
  if (json.finishReason !== 'length') {
    const parsed = JSON.parse(json.text)
    expect(typeof parsed.name).toBe('string')
    expect(Number.isInteger(parsed.age)).toBe(true)
  }
})

test('countTokens counts the rendered chat prompt', () => {
  const raw = llama.countTokens('hello world')
  const chat = llama.countTokens([{ role: 'user', content: 'hello world' }])
  expect(raw).toBeGreaterThan(0)
  expect(chat).toBeGreaterThan(raw)
})

test('health and metrics report the running engine', () => {
  const h = llama.health()
  expect(h.status).toBe('ok')
  expect(h.modelName).toMatch(/\S/)
  expect(h.contextSize).toBe(1024)
  expect(h.uptimeMs).toBeGreaterThan(0)
  const m = llama.metrics()
  expect(m.requestsCompleted).toBeGreaterThan(3)
  expect(m.completionTokensTotal).toBeGreaterThan(10)
  expect(m.decodeCalls).toBeGreaterThan(10)
  expect(JSON.parse(JSON.stringify(m))).toEqual(m)
})

test('requestId is carried into the result and the final chunk', async () => {
  const g = await llama.generate('Hi', { ...greedy, maxTokens: 2, requestId: 'chat-42' })
  expect(g.requestId).toBe('chat-42')
  const { chunks } = await collect(llama.stream('Hi', { ...greedy, maxTokens: 2, requestId: 'chat-43' }))
  const last = chunks[chunks.length - 1]
  expect(last.done && last.requestId).toBe('chat-43')
})
