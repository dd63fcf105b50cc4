// `streamIntervalMs` for streams whose text arrives in JavaScript (a remote engine's SSE): at
// most one piece per interval. A piece that comes sooner waits and joins the next one; a timer
// sends what waits once the interval has passed, so held text never waits on a silent server.
// (A local engine paces on the inference thread instead, before the text crosses to JavaScript.)

export class TextPacer {
  private held: { text: string; tokens: number } | null = null
  private lastSentAt = Number.NEGATIVE_INFINITY
  private timer: ReturnType<typeof setTimeout> | null = null

  constructor(
    private readonly intervalMs: number,
    private readonly send: (text: string, tokens: number) => void,
  ) {}

  push(text: string, tokens: number): void {
    if (this.held) {
      this.held.text += text
      this.held.tokens += tokens
      return
    }
    const now = performance.now()
    const due = this.lastSentAt + this.intervalMs
    if (now >= due) {
      this.lastSentAt = now
      this.send(text, tokens)
      return
    }
    this.held = { text, tokens }
    this.timer = setTimeout(() => this.flush(), due - now)
  }

  /** Sends what waits now: before the final chunk or an error, which must not overtake it. */
  flush(): void {
    if (this.timer) clearTimeout(this.timer)
    this.timer = null
    const held = this.held
    if (!held) return
    this.held = null
    this.lastSentAt = performance.now()
    this.send(held.text, held.tokens)
  }
}
