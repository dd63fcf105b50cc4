// One backend of a pool: an engine (local or remote), its circuit breaker, its readiness
// probe, and the requests the pool has sent it. cockatiel's breaker counts consecutive
// failures; after the cooldown, the next probe is the half-open trial that lets it back in.
import { CircuitState, ConsecutiveBreaker, circuitBreaker, handleWhen } from 'cockatiel'
import type { CircuitBreakerPolicy } from 'cockatiel'
import type * as binding from '../../binding'
import type { Engine } from '../engine'
import { ErrorCode, LlamaError } from '../errors'
import { RemoteEngine } from '../remote/remote-engine'

/** An engine a pool can route to. */
export type PoolMember = Engine | RemoteEngine

/** The pool's settings, with their defaults filled in. */
export interface BackendPolicy {
  probeIntervalMs: number
  probeTimeoutMs: number
  failureThreshold: number
  cooldownMs: number
}

/** Failures that say the backend, not the request, is at fault. */
export function isBackendFault(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === ErrorCode.UNAVAILABLE || code === ErrorCode.INTERNAL
}

/** Where a backend stands, as health() and metrics() report it. */
export type BreakerState = 'closed' | 'open' | 'half-open'

const STATE_NAMES: Record<CircuitState, BreakerState> = {
  [CircuitState.Closed]: 'closed',
  [CircuitState.Open]: 'open',
  [CircuitState.HalfOpen]: 'half-open',
  [CircuitState.Isolated]: 'open',
}

/** A request's attempt on a backend, which the pool may take back while no byte has reached the caller. */
export interface InFlightAttempt {
  delivered: boolean
  /** Takes back an attempt that delivered nothing: it fails with `reason` and is sent elsewhere. */
  redispatch(reason: LlamaError): void
  /** Ends a stream that delivered text already: it fails with `reason`. */
  cut(reason: LlamaError): void
}

export class Backend {
  readonly name: string
  readonly engine: PoolMember
  readonly breaker: CircuitBreakerPolicy
  /** Requests the pool has on this backend now. */
  active = 0
  /** What the last probe found: ready to take requests. */
  ready: boolean
  lastError: string | null = null
  readonly attempts = new Set<InFlightAttempt>()
  readonly counts = { requests: 0, completed: 0, failed: 0, redispatched: 0, probesFailed: 0 }
  private timer: ReturnType<typeof setInterval> | null = null
  private probing = false

  constructor(name: string, engine: PoolMember, private readonly policy: BackendPolicy, onChange: () => void) {
    this.name = name
    this.engine = engine
    this.ready = engine.health().status === 'ok'
    this.breaker = circuitBreaker(handleWhen(isBackendFault), {
      halfOpenAfter: policy.cooldownMs,
      breaker: new ConsecutiveBreaker(policy.failureThreshold),
    })
    this.breaker.onBreak(() => {
      this.ready = false
      // A hung or dead server will not answer what it holds: requests that have delivered
      // nothing yet are taken back and sent elsewhere; streams it was sending end UNAVAILABLE
      // rather than wait for it forever.
      const reason = new LlamaError(ErrorCode.UNAVAILABLE, `backend ${this.name} was taken out of the pool (${this.lastError ?? 'it failed'})`)
      for (const attempt of [...this.attempts]) {
        if (!attempt.delivered) attempt.redispatch(reason)
        else if (this.isRemote) attempt.cut(reason)
      }
      onChange()
    })
    this.breaker.onReset(onChange)
  }

  get isRemote(): boolean {
    return this.engine instanceof RemoteEngine
  }

  get breakerState(): BreakerState {
    return STATE_NAMES[this.breaker.state]
  }

  /** Takes requests now: probed ready and the breaker closed. */
  get eligible(): boolean {
    return this.ready && this.breaker.state === CircuitState.Closed && this.engine.health().status === 'ok'
  }

  /** Requests the backend runs at once: its slots. */
  get capacity(): number {
    if (this.engine instanceof RemoteEngine) return this.engine.capacity
    return Math.max(1, this.engine.info.parallel)
  }

  /**
   * How full the backend is: the pool's requests on it, or the slots the server last reported
   * busy (llama-server's `/slots`, which also sees other clients), against its slots.
   */
  get load(): number {
    return Math.max(this.active, this.engine.health().slotsBusy) / this.capacity
  }

  get hasRoom(): boolean {
    return this.active < this.capacity
  }

  startProbing(onChange: () => void): void {
    const tick = () => {
      void this.probe().then(onChange)
    }
    this.timer = setInterval(tick, this.policy.probeIntervalMs)
    if (typeof this.timer.unref === 'function') this.timer.unref()
    tick()
  }

  stopProbing(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = null
  }

  /**
   * One readiness probe. While the breaker is closed a probe only reports failures to it (a
   * good probe must not wipe out the requests' failures: a server may answer /health and fail
   * every completion); while it is open, the probe after the cooldown is the half-open trial.
   */
  async probe(): Promise<void> {
    if (this.probing) return
    this.probing = true
    const check = async () => {
      const engine = this.engine
      let ok: boolean
      if (engine instanceof RemoteEngine) ok = await engine.probe(this.policy.probeTimeoutMs)
      else ok = engine.health().status === 'ok'
      const health = engine.health()
      if (!ok && health.status === 'error') {
        this.lastError = health.lastError
        this.counts.probesFailed++
        throw new LlamaError(ErrorCode.UNAVAILABLE, health.lastError ?? `backend ${this.name} is not ready`)
      }
      this.ready = ok
    }
    try {
      if (this.breaker.state === CircuitState.Closed) {
        await check().catch((err) => this.noteFailure(err))
      } else {
        await this.breaker.execute(check)
      }
    } catch {
      // Counted by the breaker; an open breaker refuses the probe until its cooldown ends.
    } finally {
      this.probing = false
    }
  }

  /** Records a failure seen outside the breaker (a stream cut part way). */
  noteFailure(err: LlamaError): Promise<void> {
    this.lastError = err.message
    if (this.breaker.state !== CircuitState.Closed) return Promise.resolve()
    return this.breaker.execute(() => Promise.reject(err)).catch(() => undefined)
  }

  health(): BackendHealth {
    const h = this.engine.health()
    return {
      name: this.name,
      remote: this.isRemote,
      status: h.status,
      breaker: this.breakerState,
      ready: this.eligible,
      active: this.active,
      capacity: this.capacity,
      lastError: this.lastError ?? h.lastError ?? null,
    }
  }
}

/** One backend in a pool's health(). */
export interface BackendHealth {
  name: string
  remote: boolean
  /** The backend's own health status. */
  status: binding.HealthStatus
  /** 'open' while the pool keeps it out after failures; 'half-open' while a probe tries it. */
  breaker: BreakerState
  /** Takes requests now. */
  ready: boolean
  /** Requests the pool has on it now, and how many it runs at once. */
  active: number
  capacity: number
  lastError: string | null
}
