// replyStream on its own: what it opened is released exactly once however the reply ends, and the
// tokens a reply cost are reported once: the final chunk's usage, or the tokens streamed before
// a reply was cut short.
import type { StreamChunk, StreamFinalChunk } from 'napi-llama'
import { ReadableStream } from 'node:stream/web'
import { type SpentTokens, replyStream } from '../src/reply-stream'

const text = (tokens: number): StreamChunk => ({ type: 'text', text: 'x', tokens, done: false })
const final = { type: 'done', text: '', tokens: 0, done: true, promptTokens: 7, completionTokens: 5 } as unknown as StreamFinalChunk

/** An engine stream that sends `chunks`, then ends as `end` says (an error once they were taken, as the engine's come). */
function engineStream(chunks: StreamChunk[], end: 'open' | 'close' | Error): ReadableStream<StreamChunk> {
  return new ReadableStream<StreamChunk>({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(chunk)
      if (end === 'close') controller.close()
      else if (end instanceof Error) setImmediate(() => controller.error(end))
    },
  })
}

async function readAll(stream: ReadableStream<StreamChunk>): Promise<StreamChunk[]> {
  const out: StreamChunk[] = []
  for await (const chunk of stream) out.push(chunk)
  return out
}

function watch() {
  const spent: SpentTokens[] = []
  let releases = 0
  return { spent, releases: () => releases, release: () => void releases++, onSpent: (s: SpentTokens) => void spent.push(s) }
}

test("a finished reply: every chunk, its final chunk's usage once, released once", async () => {
  const w = watch()
  const stream = replyStream(async () => ({ stream: engineStream([text(2), text(3), final], 'close'), release: w.release }), w.onSpent)
  expect(await readAll(stream)).toHaveLength(3)
  expect(w.spent).toEqual([{ promptTokens: 7, completionTokens: 5 }])
  expect(w.releases()).toBe(1)
})

test('a reply that fails after some chunks: the error reaches the reader, the streamed tokens count, no prompt tokens', async () => {
  const w = watch()
  const stream = replyStream(async () => ({ stream: engineStream([text(2), text(3)], new Error('boom')), release: w.release }), w.onSpent)
  await expect(readAll(stream)).rejects.toThrow('boom')
  expect(w.spent).toEqual([{ promptTokens: 0, completionTokens: 5 }])
  expect(w.releases()).toBe(1)
})

test('a reply its reader cancels: the tokens sent so far count, even those the reader had not read yet', async () => {
  const w = watch()
  const stream = replyStream(async () => ({ stream: engineStream([text(1), text(1), text(1)], 'open'), release: w.release }), w.onSpent)
  const reader = stream.getReader()
  await reader.read()
  await new Promise((resolve) => setImmediate(resolve)) // the engine's chunks are taken as they come
  await reader.cancel()
  expect(w.spent).toEqual([{ promptTokens: 0, completionTokens: 3 }])
  expect(w.releases()).toBe(1)
})

test('cancelled while it still waits to open: released once it opens, nothing spent', async () => {
  const w = watch()
  let opened!: () => void
  const open = new Promise<void>((resolve) => (opened = resolve))
  const stream = replyStream(async () => {
    await open
    return { stream: engineStream([text(1)], 'open'), release: w.release }
  }, w.onSpent)
  const cancelling = stream.cancel()
  opened()
  await cancelling
  await new Promise((resolve) => setImmediate(resolve))
  expect(w.releases()).toBe(1)
  expect(w.spent).toEqual([])
})

test('a reply that fails to open: its error is the first read', async () => {
  const stream = replyStream(() => Promise.reject(new Error('no model')))
  await expect(stream.getReader().read()).rejects.toThrow('no model')
})
