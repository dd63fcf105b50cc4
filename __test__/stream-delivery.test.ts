// How streamed text reaches JavaScript: while the event loop keeps up, one chunk per piece of
// text; while it is busy, the pieces that pile up arrive joined as one chunk, complete and in
// order. Blocking is measured in decode steps (the engine's own counter), not in time, so the
// test holds on a fast and a slow machine alike.
import { Engine, type StreamChunk, type StreamFinalChunk } from '../index'
import { FAST, LONG_PROMPT, SMOLLM2 } from './helpers'

let engine: Engine

beforeAll(async () => {
  engine = await Engine.load({ modelPath: SMOLLM2, ...FAST, parallel: 1 })
})

afterAll(async () => {
  await engine?.unload()
})

const OPTIONS = { temperature: 0, maxTokens: 48 }

async function readAll(reader: ReadableStreamDefaultReader<StreamChunk>, chunks: StreamChunk[]): Promise<StreamChunk[]> {
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return chunks
    chunks.push(value)
  }
}

test('chunks produced while the event loop is blocked arrive joined, with the same text and token count', async () => {
  const reader = engine.stream(LONG_PROMPT, OPTIONS).getReader() as ReadableStreamDefaultReader<StreamChunk>
  const first = await reader.read()
  expect(first.done).toBe(false)
  // Hold this thread while the engine decodes four more steps: their text cannot be delivered.
  // (It stops waiting if the reply ends first; the step count is then checked below.)
  const from = engine.metrics().decodeCalls
  while (engine.metrics().decodeCalls < from + 4 && engine.metrics().requestsActive > 0) {
    // busy: the event loop does not turn
  }
  expect(engine.metrics().decodeCalls).toBeGreaterThanOrEqual(from + 4)
  const chunks = await readAll(reader, [first.value as StreamChunk])
  const final = chunks[chunks.length - 1] as StreamFinalChunk
  expect(final.done).toBe(true)
  const pieces = chunks.filter((c) => !c.done)
  expect(pieces.map((c) => c.text).join('')).toBe(final.generation.text)
  expect(chunks.reduce((n, c) => n + c.tokens, 0)).toBe(final.completionTokens)
  expect(pieces.some((c) => c.tokens >= 2)).toBe(true)
  expect(pieces.length).toBeLessThan(final.completionTokens)
})

test('a reader that keeps up gets the same text and token count as generate()', async () => {
  const expected = await engine.generate(LONG_PROMPT, OPTIONS)
  const chunks: StreamChunk[] = []
  for await (const c of engine.stream(LONG_PROMPT, OPTIONS)) chunks.push(c)
  expect(chunks.filter((c) => !c.done).map((c) => c.text).join('')).toBe(expected.text)
  expect(chunks.reduce((n, c) => n + c.tokens, 0)).toBe(expected.completionTokens)
})

describe('streamIntervalMs: pieces at most once per interval', () => {
  async function pieces(e: Engine, input: string, options: object): Promise<{ pieces: StreamChunk[]; final: StreamFinalChunk }> {
    const chunks: StreamChunk[] = []
    for await (const c of e.stream(input, options)) chunks.push(c)
    const final = chunks[chunks.length - 1] as StreamFinalChunk
    expect(final.done).toBe(true)
    return { pieces: chunks.filter((c) => !c.done), final }
  }

  test('the first piece goes out at once; text generated within the interval waits and arrives before the final chunk, whole', async () => {
    const expected = await engine.generate(LONG_PROMPT, OPTIONS)
    expect(expected.completionTokens).toBeGreaterThan(2)
    // Longer than the reply takes on any machine: everything after the first piece is held.
    const { pieces: got, final } = await pieces(engine, LONG_PROMPT, { ...OPTIONS, streamIntervalMs: 60_000 })
    // Two pieces; one when the whole reply was generated before this thread took the first.
    expect(got.length).toBeGreaterThanOrEqual(1)
    expect(got.length).toBeLessThanOrEqual(2)
    expect(got.map((c) => c.text).join('')).toBe(expected.text)
    expect(got.reduce((n, c) => n + c.tokens, 0) + final.tokens).toBe(expected.completionTokens)
  })

  test('held text goes out before another request is admitted, without waiting for the interval', async () => {
    // Steps take 20 ms more, so the reply outlasts the test's waits on any machine.
    const slow = await Engine.load({ modelPath: SMOLLM2, ...FAST, parallel: 2, __faults: 'step:20' } as never)
    try {
      const reader = slow.stream(LONG_PROMPT, { ...OPTIONS, maxTokens: 400, streamIntervalMs: 60_000 }).getReader() as ReadableStreamDefaultReader<StreamChunk>
      const first = await reader.read()
      expect(first.done).toBe(false)
      // Two more steps: text is now held (the interval is a minute).
      const from = slow.metrics().decodeCalls
      while (slow.metrics().decodeCalls < from + 2 && slow.metrics().requestsActive > 0) await new Promise((r) => setTimeout(r, 5))
      expect(slow.metrics().decodeCalls).toBeGreaterThanOrEqual(from + 2)
      await slow.generate('A different prompt, to be evaluated beside the reply.', { temperature: 0, maxTokens: 2 })
      const second = await reader.read()
      expect(second.done).toBe(false)
      expect((second.value as StreamChunk).done).toBe(false)
      expect((second.value as StreamChunk).tokens).toBeGreaterThanOrEqual(1)
      // Sent at the other request's admission, not at the end: the reply is still generating.
      expect(slow.metrics().requestsActive).toBe(1)
      await reader.cancel()
    } finally {
      await slow.unload()
    }
  })

  test.each([-1, 60_001, Number.NaN, '25'])('streamIntervalMs %p is INVALID_ARGUMENT, and the next request still works', async (value) => {
    const reader = engine.stream('Hi', { maxTokens: 2, streamIntervalMs: value as never }).getReader()
    await expect(reader.read()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('streamIntervalMs') })
    const ok = await engine.generate('Hi', { maxTokens: 2, temperature: 0 })
    expect(ok.completionTokens).toBeGreaterThan(0)
  })
})
