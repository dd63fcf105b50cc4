// A reply stream that may have to wait before it starts (its model loading, or memory coming
// free) and that holds what it opened until it is over: `release` runs exactly once, whichever
// way the stream ends (done, error, or cancelled by its reader, even while it still waited).
import type { StreamChunk, StreamFinalChunk } from 'napi-llama'
import type { ReadableStream, ReadableStreamDefaultReader } from 'node:stream/web'

export interface OpenedReply {
  stream: ReadableStream<StreamChunk>
  /** Runs once the reply is over. */
  release?: () => void
}

/**
 * Reads from the stream `open` resolves to; `onFinal` sees the final chunk (token accounting).
 * A rejection of `open` is the stream's error, so the route's first read still gets a real HTTP
 * status for it.
 */
export function replyStream(open: () => Promise<OpenedReply>, onFinal?: (chunk: StreamFinalChunk) => void): ReadableStream<StreamChunk> {
  let reader: ReadableStreamDefaultReader<StreamChunk> | null = null
  let release: (() => void) | undefined
  let cancelled = false
  const finish = () => {
    const r = release
    release = undefined
    r?.()
  }
  return new globalThis.ReadableStream<StreamChunk>({
    async start() {
      const opened = await open()
      release = opened.release
      reader = opened.stream.getReader()
      // Cancelled while it waited: the reply is not wanted any more.
      if (cancelled) {
        finish()
        await reader.cancel()
      }
    },
    async pull(controller) {
      if (!reader || cancelled) return
      try {
        const { value, done } = await reader.read()
        if (cancelled) return
        if (done) {
          finish()
          controller.close()
          return
        }
        controller.enqueue(value)
        if (value.done) {
          finish()
          onFinal?.(value)
        }
      } catch (err) {
        finish()
        controller.error(err)
      }
    },
    async cancel(reason) {
      cancelled = true
      finish()
      await reader?.cancel(reason)
    },
  }) as ReadableStream<StreamChunk>
}
