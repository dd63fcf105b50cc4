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
