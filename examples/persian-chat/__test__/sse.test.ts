// The SSE helpers on their own: frames built around a text placeholder must be byte for byte
// what JSON.stringify of the whole event gives, and forEachChunk must cancel the stream when a
// handler throws (that stops generation).
import type { StreamChunk } from 'napi-llama'
import { ReadableStream } from 'node:stream/web'
import { forEachChunk, openStream, textFrames } from '../src/sse'

const event = (text: string) =>
  JSON.stringify({ id: 'chatcmpl-1', object: 'chat.completion.chunk', created: 1, model: 'm', choices: [{ index: 0, delta: { content: text }, logprobs: null, finish_reason: null }] })

test.each([
  ['plain', 'Hello'],
  ['Persian, right to left', 'سلام، حالت چطور است؟'],
  ['quotes, backslashes and newlines', 'a "quoted"\\ line\nand\ttab'],
  ['control characters, the placeholder among them', 'nul \u0000 and bell \u0007'],
  ['lone surrogate halves and emoji', 'x \ud83d y 😀'],
  ['empty', ''],
])('textFrames: %s text gives the same frame as encoding the whole event', (_name, text) => {
  const frame = textFrames(event)
  expect(frame(text)).toBe(`data: ${event(text)}\n\n`)
})

test('textFrames refuses an event that does not hold the text exactly once', () => {
  expect(() => textFrames(() => '{}')).toThrow(/exactly once/)
  expect(() => textFrames((t) => JSON.stringify({ a: t, b: t }))).toThrow(/exactly once/)
})

function chunks(n: number, onCancel: () => void): ReadableStream<StreamChunk> {
  let i = 0
  return new ReadableStream<StreamChunk>({
    pull(controller) {
      i++
      if (i < n) controller.enqueue({ type: 'text', text: `t${i}`, tokens: 1, done: false })
      else controller.close()
    },
    cancel: onCancel,
  })
}

test('forEachChunk hands every chunk over, the first included, and waits on the promises it gets', async () => {
  const seen: string[] = []
  const opened = await openStream(chunks(5, () => undefined))
  await forEachChunk(opened, (c) => {
    seen.push((c as { text: string }).text)
    return seen.length === 2 ? new Promise((r) => setTimeout(r, 5)) : undefined
  })
  expect(seen).toEqual(['t1', 't2', 't3', 't4'])
})

test('forEachChunk cancels the stream when the handler throws', async () => {
  let cancelled = false
  const opened = await openStream(chunks(100, () => (cancelled = true)))
  await expect(
    forEachChunk(opened, (c) => {
      if ((c as { text: string }).text === 't3') throw new Error('client gone')
    }),
  ).rejects.toThrow('client gone')
  expect(cancelled).toBe(true)
})
