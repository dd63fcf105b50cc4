// Many users at once: slots, queueing, prompt-cache reuse and the context policy (issue 3).
import { Engine } from '../index'
import type { ChatMessage, GenerateOptions, StreamChunk } from '../index'
import { SMOLLM2, LONG_PROMPT, collect, failure } from './helpers'

const PROMPTS = ['The capital of France is', 'Once upon a time', 'My favourite food is', 'The sun rises in the']

/** Greedy for even i, seeded sampling for odd i; no cache reuse so runs are comparable. */
function options(i: number, extra: GenerateOptions = {}): GenerateOptions {
  return { seed: 11 + i, temperature: i % 2 === 0 ? 0 : 0.8, maxTokens: 24, cachePrompt: false, ...extra }
}

describe('four slots', () => {
  let engine: Engine
  beforeAll(async () => {
    engine = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 1024, parallel: 4 })
  })
  afterAll(async () => {
    await engine.unload()
  })

  test('concurrent requests give the same text as the same requests run one at a time', async () => {
    const alone: string[] = []
    for (const [i, p] of PROMPTS.entries()) alone.push((await engine.generate(p, options(i))).text)
    const together = await Promise.all(PROMPTS.map((p, i) => engine.generate(p, options(i))))
    expect(together.map((g) => g.text)).toEqual(alone)
    const streamed = await Promise.all(PROMPTS.map((p, i) => collect(engine.stream(p, options(i)))))
    expect(streamed.map((s) => s.text)).toEqual(alone)
  })

  test('three times `parallel` requests all complete; the extra ones queue', async () => {
    let maxQueue = 0
    const timer = setInterval(() => {
      maxQueue = Math.max(maxQueue, engine.health().queueDepth)
    }, 5)
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => engine.generate(PROMPTS[i % 4], { maxTokens: 16, temperature: 0, seed: i })),
    )
    clearInterval(timer)
    expect(results).toHaveLength(12)
    for (const r of results) expect(r.completionTokens).toBeGreaterThan(0)
    const queued = results.filter((r) => r.timings.queueMs > 20)
    expect(queued.length).toBeGreaterThanOrEqual(4)
    expect(maxQueue).toBeGreaterThan(0)
    const m = engine.metrics()
    expect(m.slotsTotal).toBe(4)
    expect(m.slotsBusy).toBe(0)
    expect(m.queueDepth).toBe(0)
    expect(m.ttftP50Ms).toBeGreaterThan(0)
    expect(m.ttftP95Ms).toBeGreaterThanOrEqual(m.ttftP50Ms)
    expect(m.ttftP99Ms).toBeGreaterThanOrEqual(m.ttftP95Ms)
    expect(m.decodeTokensPerSecond).toBeGreaterThan(0)
    expect(m.promptTokensPerSecond).toBeGreaterThan(0)
  })

  test('aborting one of four streams leaves the other three unchanged', async () => {
    const extra = { maxTokens: 48 }
    const alone: string[] = []
    for (const [i, p] of PROMPTS.entries()) alone.push((await engine.generate(p, options(i, extra))).text)
    const controller = new AbortController()
    const victim = (async () => {
      let n = 0
      for await (const chunk of engine.stream(PROMPTS[1], options(1, { ...extra, signal: controller.signal }))) {
        if (!chunk.done && ++n === 3) controller.abort()
      }
    })()
    const victimFailure = failure(victim)
    const others = await Promise.all([0, 2, 3].map((i) => engine.generate(PROMPTS[i], options(i, extra))))
    expect((await victimFailure).code).toBe('ABORTED')
    expect(others.map((g) => g.text)).toEqual([alone[0], alone[2], alone[3]])
    const next = await engine.generate(PROMPTS[0], options(0, extra))
    expect(next.text).toBe(alone[0])
    expect(engine.metrics().slotsBusy).toBe(0)
  })

  test('a second chat turn reuses the first turn from the cache', async () => {
    const chat: ChatMessage[] = [
      { role: 'system', content: 'You are a helpful assistant.' },
      { role: 'user', content: 'Name three colors.' },
    ]
    const first = await engine.generate(chat, { temperature: 0, maxTokens: 16 })
    const second = await engine.generate(
      [...chat, { role: 'assistant', content: first.text }, { role: 'user', content: 'Now three animals.' }],
      { temperature: 0, maxTokens: 16 },
    )
    expect(second.cachedTokens).toBeGreaterThanOrEqual(first.promptTokens)
    expect(second.timings.promptMs).toBeGreaterThan(0)
    const before = engine.metrics().cacheHits
    const fresh = await engine.generate(chat, { temperature: 0, maxTokens: 16, cachePrompt: false })
    expect(fresh.cachedTokens).toBe(0)
    expect(fresh.text).toBe(first.text)
    expect(engine.metrics().cacheHits).toBe(before)
  })
})

describe('context policy', () => {
  let engine: Engine
  beforeAll(async () => {
    engine = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 256, parallel: 2 })
  })
  afterAll(async () => {
    await engine.unload()
  })

  const filler = 'This is a long message about the weather and the sea. '.repeat(4)
  const history: ChatMessage[] = [{ role: 'system', content: 'You are terse.' }]
  for (let i = 0; i < 8; i++) {
    history.push({ role: 'user', content: `Question ${i}: ${filler}` })
    history.push({ role: 'assistant', content: `Answer ${i}: ${filler}` })
  }
  history.push({ role: 'user', content: 'What is 2 + 2?' })

  test("overflow rejects by default with both token counts", async () => {
    const err = await failure(engine.generate(history, { maxTokens: 8 }))
    expect(err.code).toBe('CONTEXT_OVERFLOW')
    expect(err.message).toMatch(/\d+ tokens.*256/)
    expect((await engine.generate('Hello', { maxTokens: 2 })).completionTokens).toBeGreaterThan(0)
  })

  test("'drop-oldest' drops whole old turns, keeps the system prompt, and reports how many", async () => {
    const g = await engine.generate(history, { maxTokens: 8, temperature: 0, contextOverflow: 'drop-oldest' })
    expect(g.droppedMessages).toBeGreaterThanOrEqual(2)
    expect(g.droppedMessages % 2).toBe(0)
    expect(g.promptTokens + 8).toBeLessThanOrEqual(256)
    const kept = history.slice(0, 1).concat(history.slice(1 + g.droppedMessages))
    expect(engine.countTokens(kept)).toBe(g.promptTokens)
    const s = await collect(engine.stream(history, { maxTokens: 8, temperature: 0, contextOverflow: 'drop-oldest' }))
    expect(s.final?.droppedMessages).toBe(g.droppedMessages)
  })

  test("'drop-oldest' cannot shrink a raw prompt or a last message that is too long", async () => {
    const long = 'word '.repeat(400)
    expect((await failure(engine.generate(long, { contextOverflow: 'drop-oldest' }))).code).toBe('CONTEXT_OVERFLOW')
    const huge: ChatMessage[] = [{ role: 'user', content: long }]
    expect((await failure(engine.generate(huge, { contextOverflow: 'drop-oldest' }))).code).toBe('CONTEXT_OVERFLOW')
    const bad = await failure(engine.generate('hi', { contextOverflow: 'truncate' as never }))
    expect(bad.code).toBe('INVALID_ARGUMENT')
  })

  test("generation that reaches the end of the context finishes with 'length'", async () => {
    const g = await engine.generate('word '.repeat(200), { maxTokens: 500, temperature: 0 })
    expect(g.finishReason).toBe('length')
    // contextSize 256 per slot: prompt and completion fill it exactly, never more.
    expect(g.promptTokens + g.completionTokens).toBe(256)
    expect((await engine.generate('Hello', { maxTokens: 2 })).completionTokens).toBeGreaterThan(0)
  })
})

test('a long prompt admitted while another request streams does not stall that stream', async () => {
  const engine = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 2048, parallel: 2 })
  try {
    const longPrompt = 'The quick brown fox jumps over the lazy dog. '.repeat(150) // ~1500 tokens
    const arrivals: number[] = []
    let longStarted = 0
    let longDone: Promise<unknown> | null = null
    for await (const chunk of engine.stream(LONG_PROMPT, { maxTokens: 120, temperature: 0 }) as AsyncIterable<StreamChunk>) {
      arrivals.push(performance.now())
      if (arrivals.length === 10) {
        longStarted = performance.now()
        longDone = engine.generate(longPrompt, { maxTokens: 4 })
      }
      if (chunk.done) break
    }
    const g = (await longDone) as { timings: { promptMs: number } }
    const longEnded = longStarted + g.timings.promptMs
    const gaps = arrivals.slice(1).map((t, i) => ({ at: t, gap: t - arrivals[i] }))
    const during = gaps.filter((x) => x.at >= longStarted && x.at <= longEnded + 50).map((x) => x.gap)
    // The long prompt took several steps, and the stream kept moving through them: with
    // 128-token prompt chunks a step costs a fraction of the whole prompt's evaluation.
    expect(during.length).toBeGreaterThan(3)
    expect(Math.max(...during)).toBeLessThan(Math.max(1500, g.timings.promptMs / 3))
  } finally {
    await engine.unload()
  }
})
