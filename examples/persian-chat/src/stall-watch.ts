// Whether a local engine's inference thread is stuck: requests are active but no decode step has
// finished for a while. A pool watches its own backends (probes, circuit breaker) instead.
import type { Metrics } from 'napi-llama'

export class StallWatch {
  private lastDecodeCalls = 0
  private lastProgressAt = Date.now()

  /** Starts over, e.g. when a model has just loaded. */
  reset(): void {
    this.lastDecodeCalls = 0
    this.lastProgressAt = Date.now()
  }

  /** True when `metrics` shows active requests and no new decode step for `stallMs`. */
  stalled(metrics: Metrics, stallMs: number): boolean {
    const now = Date.now()
    if (metrics.requestsActive === 0 || metrics.decodeCalls !== this.lastDecodeCalls) {
      this.lastDecodeCalls = metrics.decodeCalls
      this.lastProgressAt = now
      return false
    }
    return now - this.lastProgressAt > stallMs
  }
}
