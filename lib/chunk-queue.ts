// A ReadableStream fed by pushes, whose error arrives only after every chunk pushed before it
// was read. A web stream's own controller.error() discards what is queued, so a reply cut
// part way would lose text that had already arrived.
import type { ReadableStream, ReadableStreamDefaultController } from 'node:stream/web'

export class ChunkQueue<T> {
  readonly stream: ReadableStream<T>
  private readonly buffer: T[] = []
  private controller: ReadableStreamDefaultController<T> | null = null
  private ending: { error: unknown } | 'close' | null = null
  private waiting = false
  private over = false

  constructor(onCancel: () => void) {
    this.stream = new globalThis.ReadableStream<T>(
      {
        start: (controller) => {
          this.controller = controller
        },
        pull: () => {
          this.waiting = true
          this.flush()
        },
        cancel: () => {
          this.over = true
          this.buffer.length = 0
          onCancel()
        },
      },
      // Chunks wait in `buffer`: the stream's own queue stays empty so that an error never
      // overtakes them.
      { highWaterMark: 0 },
    )
  }

  /** The reader went away, or the stream ended or failed. */
  get finished(): boolean {
    return this.over || this.ending !== null
  }

  push(chunk: T): void {
    if (this.finished) return
    this.buffer.push(chunk)
    this.flush()
  }

  close(): void {
    if (this.finished) return
    this.ending = 'close'
    this.flush()
  }

  /** Errors the stream once the chunks pushed so far have been read. */
  fail(error: unknown): void {
    if (this.finished) return
    this.ending = { error }
    this.flush()
  }

  private flush(): void {
    const controller = this.controller
    if (!controller || this.over) return
    if (this.waiting && this.buffer.length > 0) {
      this.waiting = false
      controller.enqueue(this.buffer.shift() as T)
      return
    }
    if (this.buffer.length === 0 && this.ending !== null) {
      this.over = true
      if (this.ending === 'close') controller.close()
      else controller.error(this.ending.error)
    }
  }
}
