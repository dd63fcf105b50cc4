// One conversation with an engine: the messages so far, and a reply streamed into them.
import type { Engine, StreamChunk } from '../engine'
import type { ChatMessage, GenerateOptions } from '../options'
import type { Generation } from '../../binding'

export interface ReplySink {
  text(piece: string): void
  reasoning(piece: string): void
}

export interface Reply {
  /** The reply as far as it came. */
  text: string
  /** Null when the reply was stopped. */
  generation: Generation | null
}

export class ChatSession {
  private messages: ChatMessage[] = []

  constructor(
    private readonly engine: Engine,
    private readonly system: string | undefined,
    private readonly options: GenerateOptions,
  ) {
    this.reset()
  }

  reset(): void {
    this.messages = this.system ? [{ role: 'system', content: this.system }] : []
  }

  /**
   * Streams the reply to `userText` into `sink`. A reply stopped by `signal` stays in the
   * conversation as far as it came (the model said that much); a failed one leaves no trace.
   */
  async reply(userText: string, sink: ReplySink, signal: AbortSignal): Promise<Reply> {
    this.messages.push({ role: 'user', content: userText })
    let text = ''
    let generation: Generation | null = null
    try {
      // The oldest turns make room when a long chat outgrows the context.
      const stream = this.engine.stream(this.messages, { ...this.options, contextOverflow: 'drop-oldest', signal })
      for await (const chunk of stream as AsyncIterable<StreamChunk>) {
        if (chunk.type === 'text') {
          text += chunk.text
          sink.text(chunk.text)
        } else if (chunk.type === 'reasoning') {
          sink.reasoning(chunk.reasoning)
        } else if (chunk.type === 'done') {
          generation = chunk.generation
        }
      }
    } catch (err) {
      if ((err as { code?: unknown }).code !== 'ABORTED') {
        this.messages.pop()
        throw err
      }
    }
    if (generation || text) this.messages.push({ role: 'assistant', content: text })
    else this.messages.pop()
    if (generation && generation.droppedMessages > 0) this.forgetOldest(generation.droppedMessages)
    return { text, generation }
  }

  /** Drops what the engine dropped, so later turns do not send it again. */
  private forgetOldest(count: number): void {
    let left = count
    this.messages = this.messages.filter((m) => m.role === 'system' || left-- <= 0)
  }
}
