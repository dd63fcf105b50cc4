// A reply stream that may have to wait before it starts (its model loading, or memory coming
// free) and that holds what it opened until it is over: `release` runs exactly once, whichever
// way the stream ends (done, error, or cancelled by its reader, even while it still waited).
// It reads the engine's stream as the engine writes it, not as the client reads, so a reply cut
// short still knows the tokens it was sent before it stopped.
import type { StreamChunk } from 'napi-llama'
import type { ReadableStream, ReadableStreamDefaultController, ReadableStreamDefaultReader } from 'node:stream/web'

export interface OpenedReply {
  stream: ReadableStream<StreamChunk>
  /** Runs once the reply is over. */
  release?: () => void
}

/** Tokens a reply cost, as far as the engine told. */
export interface SpentTokens {
  promptTokens: number
  completionTokens: number
}

/**
 * Reads from the stream `open` resolves to. `onSpent` runs once the reply is over and cost
 * anything: with the final chunk's usage, or, for a reply cut short (failed, timed out, cancelled),
 * with the tokens of the chunks streamed before it stopped; the engine reports no prompt tokens
 * for such a reply, so they count 0. A rejection of `open` is the stream's error, so the route's
 * first read still gets a real HTTP status for it.
 */
export function replyStream(open: () => Promise<OpenedReply>, onSpent?: (spent: SpentTokens) => void): ReadableStream<StreamChunk> {
  let reader: ReadableStreamDefaultReader<StreamChunk> | null = null
  let release: (() => void) | undefined
  let cancelled = false
  let streamedTokens = 0
  let spent = false
  const finish = (usage: SpentTokens) => {
    const r = release
    release = undefined
    r?.()
    if (spent) return
    spent = true
    if (usage.promptTokens + usage.completionTokens > 0) onSpent?.(usage)
  }
  const cutShort = () => finish({ promptTokens: 0, completionTokens: streamedTokens })

  const pump = async (controller: ReadableStreamDefaultController<StreamChunk>) => {
    try {
      for (;;) {
        const { value, done } = await reader!.read()
        if (cancelled) return
        if (done) {
          cutShort()
          controller.close()
          return
        }
        controller.enqueue(value)
        if (value.done) finish({ promptTokens: value.promptTokens, completionTokens: value.completionTokens })
        else streamedTokens += value.tokens
      }
    } catch (err) {
      cutShort()
      if (!cancelled) controller.error(err)
    }
  }

  return new globalThis.ReadableStream<StreamChunk>(
    {
      async start(controller) {
        const opened = await open()
        release = opened.release
        reader = opened.stream.getReader()
        // Cancelled while it waited: the reply is not wanted any more.
        if (cancelled) {
          cutShort()
          await reader.cancel()
          return
        }
        void pump(controller)
      },
      async cancel(reason) {
        cancelled = true
        cutShort()
        await reader?.cancel(reason)
      },
    },
    // The engine does not wait for a slow reader either: its chunks queue here instead of there.
    { highWaterMark: Number.MAX_SAFE_INTEGER },
  ) as ReadableStream<StreamChunk>
}
