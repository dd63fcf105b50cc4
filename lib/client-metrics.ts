// Metrics measured on the JavaScript side, for the engines that are not a local model (a remote
// engine, a pool): the local engine's Metrics shape, filled from the requests' outcomes.
import { NativeEngine } from '../binding'
import type * as binding from '../binding'
import { ErrorCode } from './errors'
import type { LlamaError } from './errors'

/** TTFT percentiles cover this many recent requests. */
const TTFT_WINDOW = 256

export class ClientMetrics {
  private readonly counters = NativeEngine.emptyMetrics()
  private readonly ttfts: number[] = []
  private readonly startedAt = Date.now()

  submitted(): void {
    this.counters.requestsTotal++
  }

  done(generation: binding.Generation): void {
    const c = this.counters
    c.requestsCompleted++
    c.promptTokensTotal += generation.promptTokens
    c.completionTokensTotal += generation.completionTokens
    c.cachedTokensTotal += generation.cachedTokens
    if (generation.cachedTokens > 0) c.cacheHits++
    c.promptMsTotal += generation.timings.promptMs
    c.generateMsTotal += generation.timings.generateMs
    c.lastTtftMs = generation.timings.ttftMs
    c.lastTokensPerSecond = generation.timings.tokensPerSecond
    this.ttfts.push(generation.timings.ttftMs)
    if (this.ttfts.length > TTFT_WINDOW) this.ttfts.shift()
  }

  /** Counts `err` by its code and returns it. */
  failed(err: LlamaError): LlamaError {
    const c = this.counters
    if (err.code === ErrorCode.ABORTED) c.requestsAborted++
    else if (err.code === ErrorCode.TIMEOUT) c.requestsTimedOut++
    else c.requestsFailed++
    return err
  }

  /** The counters, with the gauges only the caller knows. */
  snapshot(gauges: { active: number; queued: number; slotsBusy: number; slotsTotal: number }): binding.Metrics {
    const out = { ...this.counters }
    const sorted = [...this.ttfts].sort((a, b) => a - b)
    const at = (p: number) => (sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] : 0)
    out.ttftP50Ms = at(50)
    out.ttftP95Ms = at(95)
    out.ttftP99Ms = at(99)
    out.requestsActive = gauges.active
    out.requestsQueued = gauges.queued
    out.queueDepth = gauges.queued
    out.slotsBusy = gauges.slotsBusy
    out.slotsTotal = gauges.slotsTotal
    out.uptimeMs = Date.now() - this.startedAt
    if (out.generateMsTotal > 0) out.decodeTokensPerSecond = (out.completionTokensTotal * 1000) / out.generateMsTotal
    if (out.promptMsTotal > 0) out.promptTokensPerSecond = (out.promptTokensTotal * 1000) / out.promptMsTotal
    return out
  }
}
