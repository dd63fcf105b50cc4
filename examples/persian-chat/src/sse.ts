// Server-sent events over an Express response, and the two rules every streaming route follows:
//  1. Wait for the first chunk before sending headers, so errors that happen before any text
//     (bad options, context overflow, queue full, timeout in the queue) get a real HTTP status.
//  2. A client that goes away cancels its generation: the request's AbortSignal fires and the
//     engine frees the slot at its next decode step.
import type { Response } from 'express'
import type { StreamChunk } from 'napi-llama'
import type { ReadableStream, ReadableStreamDefaultReader } from 'node:stream/web'

/**
 * An AbortController that aborts when the client disconnects before the response is complete.
 * `onGone` runs once in that case (for metrics and logs).
 */
export function abortOnDisconnect(res: Response, onGone: () => void): AbortController {
  const controller = new AbortController()
  res.on('close', () => {
    if (!res.writableFinished && !controller.signal.aborted) {
      controller.abort()
      onGone()
    }
  })
  return controller
}

export interface OpenedStream {
  first: StreamChunk
  reader: ReadableStreamDefaultReader<StreamChunk>
}

/** Reads the first chunk (it rejects with the request's error if it fails before any text). */
export async function openStream(stream: ReadableStream<StreamChunk>): Promise<OpenedStream> {
  const reader = stream.getReader()
  try {
    const { value, done } = await reader.read()
    if (done || !value) throw new Error('stream ended before its final chunk')
    return { first: value, reader }
  } catch (err) {
    reader.releaseLock()
    throw err
  }
}

/**
 * All chunks of an opened stream, the first included, ending with the final (`done: true`) one.
 * Leaving the loop early (an exception, a `break`) cancels the stream, which stops generation.
 */
export async function* allChunks({ first, reader }: OpenedStream): AsyncGenerator<StreamChunk> {
  let finished = false
  try {
    yield first
    for (;;) {
      const { value, done } = await reader.read()
      if (done) {
        finished = true
        return
      }
      yield value
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined)
    reader.releaseLock()
  }
}

export function startEventStream(res: Response): void {
  res.status(200)
  res.setHeader('Content-Type', 'text/event-stream; charset=utf-8')
  res.setHeader('Cache-Control', 'no-cache, no-transform')
  res.setHeader('Connection', 'keep-alive')
  res.setHeader('X-Accel-Buffering', 'no') // nginx: do not buffer the stream
  res.flushHeaders()
}

/**
 * Writes one event; waits for the socket to drain when the client reads slower than we write,
 * so the socket's buffer stays small (the engine's stream still queues the pieces generated
 * meanwhile: at most the reply itself, which `LLM_MAX_TOKENS` bounds).
 */
export async function sendEvent(res: Response, data: string, event?: string): Promise<void> {
  if (res.writableEnded || res.destroyed) return
  const frame = (event ? `event: ${event}\n` : '') + `data: ${data}\n\n`
  if (!res.write(frame)) {
    await new Promise<void>((resolve) => {
      const done = () => {
        res.off('drain', done)
        res.off('close', done)
        resolve()
      }
      res.on('drain', done)
      res.on('close', done)
    })
  }
}
