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
 * Hands every chunk of an opened stream to `onChunk`, the first included, ending with the final
 * (`done: true`) one. `onChunk` returns a promise only when it must wait (a slow client), so a
 * chunk costs no extra promise otherwise. An exception leaves early and cancels the stream,
 * which stops generation.
 */
export async function forEachChunk({ first, reader }: OpenedStream, onChunk: (chunk: StreamChunk) => Promise<void> | void): Promise<void> {
  let finished = false
  try {
    let chunk = first
    for (;;) {
      const wait = onChunk(chunk)
      if (wait) await wait
      const { value, done } = await reader.read()
      if (done) {
        finished = true
        return
      }
      chunk = value
    }
  } finally {
    if (!finished) await reader.cancel().catch(() => undefined)
    reader.releaseLock()
  }
}

/** A placeholder no text of a reply contains: JSON writes it as an escape, never raw. */
const TEXT_SLOT = '\u0000'

/**
 * The SSE frame of each text piece of one reply, built from the event's JSON made once around a
 * placeholder: per piece, only the text is encoded. `render` is the event's JSON for a text.
 */
export function textFrames(render: (text: string) => string): (text: string) => string {
  const json = render(TEXT_SLOT)
  const slot = JSON.stringify(TEXT_SLOT)
  const at = json.indexOf(slot)
  if (at < 0 || json.indexOf(slot, at + 1) >= 0) throw new Error('textFrames: the event must hold the text exactly once')
  const before = `data: ${json.slice(0, at)}`
  const after = `${json.slice(at + slot.length)}\n\n`
  return (text) => before + JSON.stringify(text) + after
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
 * Writes one event. Returns a promise only when the client reads slower than we write: it
 * settles once the socket drains, so the socket's buffer stays small (the engine's stream still
 * queues the pieces generated meanwhile: at most the reply itself, which `LLM_MAX_TOKENS`
 * bounds). Otherwise nothing to wait for, and no promise made.
 */
export function sendEvent(res: Response, data: string, event?: string): Promise<void> | undefined {
  return sendFrame(res, (event ? `event: ${event}\n` : '') + `data: ${data}\n\n`)
}

/** Writes a whole SSE frame; as sendEvent. */
export function sendFrame(res: Response, frame: string): Promise<void> | undefined {
  if (res.writableEnded || res.destroyed || res.write(frame)) return undefined
  return new Promise<void>((resolve) => {
    const done = () => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}
