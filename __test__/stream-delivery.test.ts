// How streamed text reaches JavaScript: while the event loop keeps up, one chunk per piece of
// text; while it is busy, the pieces that pile up arrive joined as one chunk, complete and in
// order. Blocking is measured in decode steps (the engine's own counter), not in time, so the
// test holds on a fast and a slow machine alike.
import { Engine, type StreamChunk } from '../index'
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
  const expected = await engine.generate(LONG_PROMPT, OPTIONS)
  const reader = engine.stream(LONG_PROMPT, OPTIONS).getReader() as ReadableStreamDefaultReader<StreamChunk>
  const first = await reader.read()
  expect(first.done).toBe(false)
  // Hold this thread while the engine decodes four more steps: their text cannot be delivered.
  const from = engine.metrics().decodeCalls
  const giveUp = Date.now() + 120_000
  while (engine.metrics().decodeCalls < from + 4 && Date.now() < giveUp) {
    // busy: the event loop does not turn
  }
  const chunks = await readAll(reader, [first.value as StreamChunk])
  const pieces = chunks.filter((c) => !c.done)
  expect(pieces.map((c) => c.text).join('')).toBe(expected.text)
  expect(chunks.reduce((n, c) => n + c.tokens, 0)).toBe(expected.completionTokens)
  expect(chunks[chunks.length - 1].done).toBe(true)
  expect(pieces.some((c) => c.tokens >= 2)).toBe(true)
  expect(pieces.length).toBeLessThan(expected.completionTokens)
})

test('a reader that keeps up gets the same text and token count as generate()', async () => {
  const expected = await engine.generate(LONG_PROMPT, OPTIONS)
  const chunks: StreamChunk[] = []
  for await (const c of engine.stream(LONG_PROMPT, OPTIONS)) chunks.push(c)
  expect(chunks.filter((c) => !c.done).map((c) => c.text).join('')).toBe(expected.text)
  expect(chunks.reduce((n, c) => n + c.tokens, 0)).toBe(expected.completionTokens)
})
