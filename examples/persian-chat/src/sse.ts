// Server-sent events over an Express response, and the rules every streaming route follows:
//  1. Wait for the first chunk before sending headers, so errors that happen before any text
//     (bad options, context overflow, queue full) get a real HTTP status. A request that waits
//     in the queue longer than SSE_KEEPALIVE_MS starts the stream anyway and sends comments, so
//     proxies that close idle streams keep it; an error after that arrives as an event.
//  2. A client that goes away cancels its generation: the request's AbortSignal fires and the
//     engine frees the slot at its next decode step.
//  3. A client that stops reading is dropped once its socket takes no bytes for
//     SLOW_READER_TIMEOUT_MS, which cancels its generation as in 2.
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

/**
 * Reads the first chunk (it rejects with the request's error if it fails before any text).
 * Meanwhile `events`, when given, gets a keep-alive comment every `keepAliveMs`, the first of
 * which starts the event stream.
 */
export async function openStream(stream: ReadableStream<StreamChunk>, events?: EventStream): Promise<OpenedStream> {
  const reader = stream.getReader()
  const keepAlive = events && setInterval(() => events.keepAlive(), events.policy.keepAliveMs)
  try {
    const { value, done } = await reader.read()
    if (done || !value) throw new Error('stream ended before its final chunk')
    return { first: value, reader }
  } catch (err) {
    reader.releaseLock()
    throw err
  } finally {
    clearInterval(keepAlive)
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

export interface StreamPolicy {
  /** How often a keep-alive comment goes out while the request waits for its first chunk. */
  keepAliveMs: number
  /** How long the socket may take no bytes before the client is dropped. */
  slowReaderMs: number
  /** Runs when a slow reader is dropped (for metrics). */
  onSlowReader(): void
}

/** One streamed reply: its headers go out once, with the first event or keep-alive. */
export class EventStream {
  constructor(
    private readonly res: Response,
    readonly policy: StreamPolicy,
  ) {}

  /** True once the 200 and the event-stream headers are sent: errors must be events from then on. */
  get started(): boolean {
    return this.res.headersSent
  }

  /**
   * Sets the 200 and the event-stream headers. They leave with the first frames, which this
   * tick writes into one packet (the socket is corked until the next tick): the client wakes
   * once for the headers, the role event and the first text instead of once for each.
   */
  start(): void {
    if (this.started) return
    const res = this.res
    res.cork()
    process.nextTick(() => res.uncork())
    res.status(200)
    res.setHeader('Content-Type', 'text/event-stream; charset=utf-8')
    res.setHeader('Cache-Control', 'no-cache, no-transform')
    res.setHeader('Connection', 'keep-alive')
    res.setHeader('X-Accel-Buffering', 'no') // nginx: do not buffer the stream
    res.flushHeaders()
  }

  /** An SSE comment: clients ignore it, proxies see traffic. */
  keepAlive(): void {
    this.start()
    void this.frame(': keep-alive\n\n')
  }

  /**
   * Writes one event. Returns a promise only when the client reads slower than we write: it
   * settles once the socket drains, so the socket's buffer stays small (the engine's stream still
   * queues the pieces generated meanwhile: at most the reply itself, which `LLM_MAX_TOKENS`
   * bounds). Otherwise nothing to wait for, and no promise made.
   */
  send(data: string, event?: string): Promise<void> | undefined {
    return this.frame((event ? `event: ${event}\n` : '') + `data: ${data}\n\n`)
  }

  /** Writes a whole SSE frame; as send. A reader that takes nothing for too long is dropped. */
  frame(frame: string): Promise<void> | undefined {
    const res = this.res
    if (res.writableEnded || res.destroyed || res.write(frame)) return undefined
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(deadline)
        res.off('drain', done)
        res.off('close', done)
        resolve()
      }
      // Destroying the response closes it: abortOnDisconnect then cancels the generation.
      const deadline = setTimeout(() => {
        this.policy.onSlowReader()
        res.destroy()
      }, this.policy.slowReaderMs)
      res.on('drain', done)
      res.on('close', done)
    })
  }

  end(): void {
    if (this.started) this.res.end()
  }
}
