// A pool: one Engine surface over several engines, local and remote mixed. It sends each
// request to the least-loaded ready backend (or the one that served the conversation before),
// holds requests while every backend is full, takes failing backends out (circuit breaker),
// and retries a request elsewhere only while nothing of its reply has reached the caller.
import type { ReadableStream, ReadableStreamDefaultReader } from 'node:stream/web'
import { DelegateBackoff, handleWhen, retry } from 'cockatiel'
import { ClientMetrics } from '../client-metrics'
import type * as binding from '../../binding'
import type { Health, StreamChunk } from '../engine'
import { ChunkQueue } from '../chunk-queue'
import { ErrorCode, LlamaError, abortedError, invalid, toError } from '../errors'
import { generateOptions, nativeInput, poolOptions } from '../options'
import type { GenerateOptions, Input, ParsedPoolOptions, PoolOptions } from '../options'
import { RemoteEngine } from '../remote/remote-engine'
import { AffinityTable, conversationKey } from './affinity'
import { Backend, isBackendFault } from './backend'
import type { BackendHealth, InFlightAttempt, PoolMember } from './backend'

type Generation = binding.Generation
type Metrics = binding.Metrics

/** health() of a pool: ok while one backend is ready, and each backend's state. */
export interface PoolHealth extends Health {
  /** Each backend; `queueDepth` counts the requests the pool holds because every ready one is full. */
  backends: BackendHealth[]
}

/** One backend's counters in a pool's metrics(). */
export interface BackendMetrics {
  name: string
  breaker: BackendHealth['breaker']
  /** Attempts the pool sent it, and how they ended. */
  requests: number
  completed: number
  failed: number
  /** Attempts taken back while nothing was delivered, and sent elsewhere. */
  redispatched: number
  probesFailed: number
  /** The backend engine's own metrics. */
  metrics: Metrics
}

/** metrics() of a pool: totals over its requests (a retried request counts once), and per backend. */
export interface PoolMetrics extends Metrics {
  /** Attempts sent again after a failure before the first byte. */
  retries: number
  backends: BackendMetrics[]
}

/** Errors another attempt may fix: the backend failed or was busy, and nothing was delivered. */
function isRetryable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return isBackendFault(err) || code === ErrorCode.QUEUE_FULL || code === ErrorCode.MODEL_NOT_LOADED
}

interface Waiter {
  wake: () => void
}

/** What one request carries through its attempts. */
interface RequestState {
  input: string | binding.ChatMessage[]
  options: binding.GenerateOptions
  key: string | null
  deadline: number | null
  timeoutMs: number | null
  /** Aborted when the caller's signal aborts or the caller cancels the stream. */
  aborted: AbortController
  /** Stops listening to the caller's signal. */
  detach: () => void
  /** Set once the first piece of the reply reached the caller: no retry after that. */
  delivered: boolean
  /** Backends this request failed on, avoided while others are ready. */
  failedOn: Set<Backend>
  /** The wait before the next attempt, decided with the retry. */
  pendingDelay: number
}

/** A server's Retry-After longer than this is not waited for when the request has no deadline. */
const MAX_RETRY_AFTER_MS = 60_000

/** Waits `ms`, or rejects ABORTED as soon as `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortedError())
    const onAbort = () => {
      clearTimeout(timer)
      reject(abortedError())
    }
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal.addEventListener('abort', onAbort, { once: true })
  })
}

export class EnginePool {
  private readonly backends: Backend[]
  private readonly options: ParsedPoolOptions
  private readonly affinity = new AffinityTable()
  private readonly waiters: Waiter[] = []
  private readonly startedAt = Date.now()
  private readonly stats = new ClientMetrics()
  private retries = 0
  private closing: Promise<void> | null = null

  constructor(members: ReadonlyArray<PoolMember>, options?: PoolOptions) {
    this.options = poolOptions(options)
    if (!Array.isArray(members) || members.length === 0) throw invalid('Engine.pool needs a non-empty array of engines')
    const names = new Set<string>()
    this.backends = members.map((engine, i) => {
      if (!engine || typeof engine.generate !== 'function' || typeof engine.health !== 'function') {
        throw invalid(`engines[${i}] is not an engine: pass engines from Engine.load() or Engine.connect()`)
      }
      if ((engine as unknown) instanceof EnginePool) throw invalid(`engines[${i}] is a pool: pass its engines instead`)
      let name = engine instanceof RemoteEngine ? engine.backend : `local:${engine.info.name}`
      if (names.has(name)) name = `${name}#${i}`
      names.add(name)
      return new Backend(name, engine, this.options, () => this.wakeWaiters())
    })
    for (const backend of this.backends) backend.startProbing(() => this.wakeWaiters())
  }

  /** The first ready backend's model, else the first backend's. */
  get info(): binding.ModelInfo {
    return (this.backends.find((b) => b.eligible) ?? this.backends[0]).engine.info
  }

  private wakeWaiters(): void {
    for (const waiter of this.waiters.splice(0)) waiter.wake()
  }

  /** The backend for the next attempt: the conversation's, else the least loaded with room. */
  private choose(request: RequestState): Backend | null {
    const eligible = this.backends.filter((b) => b.eligible)
    const fresh = eligible.filter((b) => !request.failedOn.has(b))
    const candidates = fresh.length > 0 ? fresh : eligible
    if (request.key !== null && this.options.affinity) {
      const name = this.affinity.get(request.key)
      const preferred = candidates.find((b) => b.name === name)
      if (preferred && preferred.hasRoom) return preferred
    }
    let best: Backend | null = null
    for (const b of candidates) {
      if (!b.hasRoom) continue
      if (best === null || b.load < best.load) best = b
    }
    return best
  }

  /** Waits for a backend with room, within the request's deadline. */
  private async acquire(request: RequestState): Promise<Backend> {
    for (;;) {
      if (this.closing) throw new LlamaError(ErrorCode.MODEL_NOT_LOADED, 'the pool was unloaded')
      this.checkAlive(request)
      const backend = this.choose(request)
      if (backend) {
        backend.active++
        return backend
      }
      if (!this.backends.some((b) => b.eligible)) {
        const why = this.backends.map((b) => `${b.name}: ${b.lastError ?? b.engine.health().lastError ?? b.engine.health().status}`).join('; ')
        throw new LlamaError(ErrorCode.UNAVAILABLE, `no backend of the pool is ready (${why})`)
      }
      if (this.waiters.length >= this.options.maxQueue) {
        throw new LlamaError(ErrorCode.QUEUE_FULL, `every backend is busy and ${this.waiters.length} requests wait already (maxQueue): retry later`)
      }
      await this.waitForRoom(request)
    }
  }

  private waitForRoom(request: RequestState): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | null = null
      const signal = request.aborted.signal
      const done = (err?: LlamaError) => {
        if (timer) clearTimeout(timer)
        signal.removeEventListener('abort', onAbort)
        const at = this.waiters.indexOf(waiter)
        if (at >= 0) this.waiters.splice(at, 1)
        if (err) reject(err)
        else resolve()
      }
      const onAbort = () => done(abortedError())
      const waiter: Waiter = { wake: () => done() }
      this.waiters.push(waiter)
      signal.addEventListener('abort', onAbort, { once: true })
      // Probes change readiness without a request finishing: look again now and then.
      const wait = Math.min(this.options.probeIntervalMs, request.deadline !== null ? Math.max(0, request.deadline - Date.now()) : Infinity)
      timer = setTimeout(() => (request.deadline !== null && Date.now() >= request.deadline ? done(this.timeout(request)) : done()), wait)
    })
  }

  private release(backend: Backend): void {
    backend.active--
    this.wakeWaiters()
  }

  private timeout(request: RequestState): LlamaError {
    return new LlamaError(
      ErrorCode.TIMEOUT,
      `the request did not finish within timeoutMs = ${request.timeoutMs} (queue wait and retries included): raise timeoutMs or lower maxTokens`,
    )
  }

  private begin(input: Input, options: GenerateOptions | undefined): RequestState {
    if (this.closing) throw new LlamaError(ErrorCode.MODEL_NOT_LOADED, 'the pool was unloaded')
    const parsed = generateOptions(options)
    const native = nativeInput(input)
    const signal = parsed.signal
    if (signal && signal.aborted) throw abortedError()
    // The caller's signal is listened to once, here: attempts listen to the pool's own signal.
    const aborted = new AbortController()
    let detach = () => undefined as void
    if (signal) {
      const onAbort = () => aborted.abort()
      try {
        signal.addEventListener('abort', onAbort, { once: true })
      } catch (err) {
        throw invalid(`signal.addEventListener threw (${(err as Error)?.message}): pass an AbortSignal`)
      }
      detach = () => {
        try {
          signal.removeEventListener('abort', onAbort)
        } catch {
          // The request is over either way.
        }
      }
    }
    const timeoutMs = parsed.timeoutMs ?? this.options.timeoutMs
    return {
      input: native,
      options: parsed.native,
      key: this.options.affinity ? conversationKey(native) : null,
      deadline: timeoutMs !== null ? Date.now() + timeoutMs : null,
      timeoutMs,
      aborted,
      detach,
      delivered: false,
      failedOn: new Set(),
      pendingDelay: 0,
    }
  }

  /**
   * Runs `attempt` on backends until one succeeds, retrying (capped exponential backoff with
   * jitter, a server's Retry-After honoured) only failures another attempt may fix, only while
   * nothing was delivered, and never past the deadline.
   */
  private async withRetries<T>(
    request: RequestState,
    attempt: (backend: Backend, signal: AbortSignal, taken: InFlightAttempt) => Promise<T>,
  ): Promise<{ value: T; backend: Backend; release: () => void }> {
    // cockatiel decides whether to retry and counts attempts; the wait itself is ours, so an
    // abort ends it at once.
    const policy = retry(
      handleWhen((err) => {
        if (request.delivered || !isRetryable(err) || this.closing || request.aborted.signal.aborted) return false
        const retryAfter = (err as LlamaError).retryAfterMs ?? 0
        if (request.deadline === null && retryAfter > MAX_RETRY_AFTER_MS) return false
        const another = this.backends.some((b) => b.eligible && !request.failedOn.has(b))
        const exponential = Math.min(this.options.retryMaxDelayMs, this.options.retryBaseDelayMs * 2 ** request.failedOn.size)
        request.pendingDelay = another && retryAfter === 0 ? 0 : Math.max(retryAfter, exponential * (0.5 + Math.random() / 2))
        return request.deadline === null || Date.now() + request.pendingDelay < request.deadline
      }),
      { maxAttempts: this.options.maxRetries, backoff: new DelegateBackoff(() => 0) },
    )
    policy.onRetry(() => {
      this.retries++
    })
    return policy.execute(async () => {
      if (request.pendingDelay > 0) {
        const wait = request.pendingDelay
        request.pendingDelay = 0
        await sleep(wait, request.aborted.signal)
      }
      this.checkAlive(request)
      const backend = await this.acquire(request)
      // From here on `backend.active` counts this attempt: every path below releases it.
      const controller = new AbortController()
      let takenBack: LlamaError | null = null
      const taken: InFlightAttempt = {
        delivered: false,
        redispatch: (reason) => {
          takenBack = reason
          controller.abort(reason)
        },
        cut: (reason) => controller.abort(reason),
      }
      const onAbort = () => controller.abort()
      // A stream keeps its backend busy after its first chunk: the caller releases it at the end.
      let released = false
      const release = () => {
        if (released) return
        released = true
        request.aborted.signal.removeEventListener('abort', onAbort)
        backend.attempts.delete(taken)
        this.release(backend)
      }
      let succeeded = false
      try {
        this.checkAlive(request)
        request.aborted.signal.addEventListener('abort', onAbort, { once: true })
        backend.attempts.add(taken)
        backend.counts.requests++
        const value = await backend.breaker.execute(() =>
          attempt(backend, controller.signal, taken).catch((err) => {
            // Settled before the breaker counts the failure: a break it causes must not take it back again.
            if (!taken.delivered) backend.attempts.delete(taken)
            // An attempt the pool took back failed because of the backend, not the caller.
            if (takenBack !== null && !taken.delivered) throw takenBack
            throw toError(err)
          }),
        )
        if (request.key !== null) this.affinity.set(request.key, backend.name)
        succeeded = true
        return { value, backend, release }
      } catch (err) {
        const e = err instanceof LlamaError ? err : new LlamaError(ErrorCode.UNAVAILABLE, `backend ${backend.name} is out of the pool for now`)
        if (takenBack !== null) backend.counts.redispatched++
        else if (e.code !== ErrorCode.ABORTED) backend.counts.failed++
        if (isBackendFault(e)) backend.lastError = e.message
        request.failedOn.add(backend)
        this.checkAlive(request)
        throw e
      } finally {
        if (!succeeded) release()
      }
    })
  }

  /** Throws ABORTED once the caller aborted, TIMEOUT once the deadline passed. */
  private checkAlive(request: RequestState): void {
    if (request.aborted.signal.aborted) throw abortedError()
    if (request.deadline !== null && Date.now() >= request.deadline) throw this.timeout(request)
  }

  private remaining(request: RequestState): number | undefined {
    if (request.deadline === null) return undefined
    return Math.max(1, Math.ceil(request.deadline - Date.now()))
  }

  private attemptOptions(request: RequestState, signal: AbortSignal): GenerateOptions {
    const { stop, jsonSchema, contextOverflow, tools, toolChoice, reasoning, ...rest } = request.options
    const options: GenerateOptions = { ...rest, signal }
    if (stop !== undefined) options.stop = stop
    // Tools crossed to the engine as JSON text, which the engine wrote itself: it reads back.
    if (tools !== undefined) options.tools = JSON.parse(tools) as GenerateOptions['tools']
    if (toolChoice !== undefined) options.toolChoice = JSON.parse(toolChoice) as GenerateOptions['toolChoice']
    if (reasoning !== undefined) options.reasoning = reasoning as GenerateOptions['reasoning']
    if (jsonSchema !== undefined) options.jsonSchema = jsonSchema
    if (contextOverflow !== undefined) options.contextOverflow = contextOverflow as GenerateOptions['contextOverflow']
    const timeoutMs = this.remaining(request)
    if (timeoutMs !== undefined) options.timeoutMs = timeoutMs
    return options
  }

  generate(input: Input, options?: GenerateOptions): Promise<Generation> {
    let request: RequestState
    try {
      request = this.begin(input, options)
    } catch (err) {
      return Promise.reject(toError(err))
    }
    this.stats.submitted()
    const run = this.withRetries(request, async (backend, signal, taken) => {
      const generation = await backend.engine.generate(request.input as Input, this.attemptOptions(request, signal))
      taken.delivered = true
      request.delivered = true
      backend.counts.completed++
      return generation
    }).then(({ value, release }) => {
      release()
      return value
    })
    return this.guard(request, run).then(
      (generation) => {
        request.detach()
        this.stats.done(generation)
        return generation
      },
      (err) => {
        request.detach()
        throw this.stats.failed(toError(err))
      },
    )
  }

  /** The request's deadline as a rejection, even while an attempt is stuck. */
  private guard<T>(request: RequestState, run: Promise<T>): Promise<T> {
    if (request.deadline === null) return run
    let timer: ReturnType<typeof setTimeout> | null = null
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.timeout(request)), Math.max(0, (request.deadline as number) - Date.now()) + 250)
      if (typeof timer.unref === 'function') timer.unref()
    })
    return Promise.race([run, expired]).finally(() => {
      if (timer) clearTimeout(timer)
    })
  }

  /** Breaking out of `for await` (or `stream.cancel()`) stops the backend's generation. */
  stream(input: Input, options?: GenerateOptions): ReadableStream<StreamChunk> {
    let reader: ReadableStreamDefaultReader<StreamChunk> | null = null
    let request: RequestState | null = null
    const queue = new ChunkQueue<StreamChunk>(() => {
      this.stats.failed(abortedError())
      if (request) {
        request.aborted.abort()
        request.detach()
      }
      if (reader) reader.cancel().catch(() => undefined)
    })
    try {
      request = this.begin(input, options)
    } catch (err) {
      queue.fail(toError(err))
      return queue.stream
    }
    const current = request
    this.stats.submitted()
    const firstChunk = this.withRetries(current, async (backend, signal, taken) => {
      const stream = backend.engine.stream(current.input as Input, this.attemptOptions(current, signal))
      const r = stream.getReader()
      const first = await r.read()
      if (first.done) throw new LlamaError(ErrorCode.INTERNAL, `backend ${backend.name} ended a stream without a final chunk`)
      taken.delivered = true
      current.delivered = true
      return { reader: r, first: first.value }
    })
    this.guard(current, firstChunk).then(
      ({ value, backend, release }) => {
        reader = value.reader
        this.pipe(value.reader, value.first, backend, queue).finally(() => {
          current.detach()
          release()
        })
      },
      (err) => {
        current.detach()
        // An attempt still running when the deadline struck: whatever it brings is dropped.
        firstChunk.then(
          ({ value, release }) => {
            value.reader.cancel().catch(() => undefined)
            release()
          },
          () => undefined,
        )
        if (!queue.finished) queue.fail(this.stats.failed(toError(err)))
      },
    )
    return queue.stream
  }

  /** Passes a backend's chunks on after the first; a cut stream counts against the backend. */
  private async pipe(reader: ReadableStreamDefaultReader<StreamChunk>, first: StreamChunk, backend: Backend, queue: ChunkQueue<StreamChunk>): Promise<void> {
    try {
      let chunk = first
      for (;;) {
        if (queue.finished) {
          reader.cancel().catch(() => undefined)
          return
        }
        queue.push(chunk)
        if (chunk.done) {
          backend.counts.completed++
          this.stats.done(chunk.generation)
          queue.close()
          return
        }
        const next = await reader.read()
        if (next.done) throw new LlamaError(ErrorCode.UNAVAILABLE, `backend ${backend.name} ended the stream part way`)
        chunk = next.value
      }
    } catch (err) {
      const e = toError(err)
      if (e.code !== ErrorCode.ABORTED) backend.counts.failed++
      if (isBackendFault(e)) void backend.noteFailure(e)
      if (!queue.finished) queue.fail(this.stats.failed(e))
    }
  }

  private anyBackend(): Backend {
    return this.backends.find((b) => b.eligible) ?? this.backends[0]
  }

  /** Token ids from a ready backend's tokenizer. */
  async tokenize(text: string): Promise<Uint32Array> {
    return this.anyBackend().engine.tokenize(text)
  }

  async detokenize(tokens: Uint32Array | number[]): Promise<string> {
    return this.anyBackend().engine.detokenize(tokens)
  }

  async countTokens(input: Input): Promise<number> {
    return this.anyBackend().engine.countTokens(input)
  }

  /** Never throws: ok while one backend is ready. */
  health(): PoolHealth {
    const backends = this.backends.map((b) => b.health())
    const ready = this.backends.filter((b) => b.eligible)
    const status: binding.HealthStatus = this.closing
      ? 'unloaded'
      : ready.length > 0
        ? 'ok'
        : backends.some((b) => b.status === 'loading')
          ? 'loading'
          : 'error'
    const lead = (ready[0] ?? this.backends[0]).engine.health()
    return {
      status,
      modelName: lead.modelName ?? null,
      contextSize: lead.contextSize,
      uptimeMs: Date.now() - this.startedAt,
      lastError: status === 'ok' ? null : backends.map((b) => b.lastError).find((e) => e) ?? null,
      slotsBusy: backends.reduce((n, b) => n + Math.min(b.active, b.capacity), 0),
      slotsTotal: backends.reduce((n, b) => n + b.capacity, 0),
      queueDepth: this.waiters.length,
      backends,
    }
  }

  metrics(): PoolMetrics {
    const health = this.health()
    const out = this.stats.snapshot({
      active: this.backends.reduce((n, b) => n + b.active, 0),
      queued: this.waiters.length,
      slotsBusy: health.slotsBusy,
      slotsTotal: health.slotsTotal,
    })
    return {
      ...out,
      retries: this.retries,
      backends: this.backends.map((b) => ({
        name: b.name,
        breaker: b.breakerState,
        ...b.counts,
        metrics: b.engine.metrics(),
      })),
    }
  }

  /** Stops probing and unloads every backend (local models are freed, connections closed). */
  unload(): Promise<void> {
    if (!this.closing) {
      for (const backend of this.backends) backend.stopProbing()
      this.wakeWaiters()
      this.closing = Promise.all(this.backends.map((b) => b.engine.unload())).then(() => undefined)
    }
    return this.closing
  }
}
