// The models this service serves, at run time: those of LLM_MODELS_FILE, or the one model of
// LLM_MODEL_PATH (multi-model/env-model.ts). Each is loaded by the first request that names it
// (or at start, when its spec says so), unloaded once idle for its TTL, and evicted (least
// recently used first, idle ones only) when a load would take the loaded models past the memory
// budget. Requests hold a lease on their model while they run: a model with requests in flight is
// never unloaded, and a request whose model cannot load yet waits, up to its deadline, for a load
// or for memory to come free.
//
// Memory is the engine's own figure (`ModelInfo.memoryBytes`: weights plus KV cache). Before a
// model's first load only its file size is known, so that is its estimate until then; a load that
// turns out larger than estimated evicts more idle models afterwards.
import { type Engine, EnginePool, type ModelInfo } from 'napi-llama'
import { ApiError } from '../errors'
import { StallWatch } from '../stall-watch'
import { formatBytes } from './bytes'
import { type Resident, evictionsFor } from './eviction'
import type { ModelSpec } from './models-file'

export type ModelEngine = Engine | EnginePool

/**
 * `configured`: never loaded; `loading`; `loaded`; `unloaded`: was loaded, unloaded while idle
 * (`unloadReason` says whether its TTL ran out or another model needed the memory); `failed`:
 * its last load failed (or it needs more than the whole budget).
 */
export type ModelState = 'configured' | 'loading' | 'loaded' | 'unloaded' | 'failed'
export type UnloadReason = 'idle' | 'evicted'

export interface RegistryPolicy {
  /** Infinity: no budget (one model). */
  budgetBytes: number
  /** A model's own `idleTtlMs` wins over this; 0 keeps models until they are evicted. */
  idleTtlMs: number
  /** After a failed load, requests for that model are refused this long before the next attempt. */
  loadRetryMs: number
}

/** A request's claim on a loaded model; release it once, when the request is over. */
export interface Lease {
  readonly engine: ModelEngine
  readonly spec: ModelSpec
  release(): void
}

/** What a request waits for its model under. */
export interface WaitLimits {
  deadlineAt: number
  /** The client's: when it goes away, the request stops waiting. */
  signal?: AbortSignal
}

export interface ModelCounters {
  loads: number
  loadFailures: number
  unloads: Record<UnloadReason, number>
}

/** One model as /health, /v1/models and /metrics show it. */
export interface ModelStatus {
  name: string
  isDefault: boolean
  state: ModelState
  unloadReason: UnloadReason | null
  /** Requests holding the model (running or queued in its engine). */
  inFlight: number
  /** Memory it holds now against the budget (an estimate while loading). */
  memoryBytes: number
  /** What its next load is expected to take. */
  estimatedMemoryBytes: number
  /** The last load failure's detail (for operators: it may hold paths). */
  error: string | null
  counters: ModelCounters
  /** Its engine while loaded. */
  engine: ModelEngine | null
}

class ManagedModel {
  state: ModelState = 'configured'
  engine: ModelEngine | null = null
  loading: Promise<void> | null = null
  /** Memory of earlier engines of this model still being freed. */
  unloadingBytes = 0
  inFlight = 0
  lastUsedAt = 0
  /** memoryBytes of its last load. */
  knownMemoryBytes: number | null = null
  unloadReason: UnloadReason | null = null
  /** What requests get while the failure stands. */
  failure: ApiError | null = null
  /** Why its last load failed, as the loader said (for operators: it may hold paths). */
  loadError: Error | null = null
  failedAt = 0
  idleTimer: NodeJS.Timeout | null = null
  readonly counters: ModelCounters = { loads: 0, loadFailures: 0, unloads: { idle: 0, evicted: 0 } }
  readonly stall = new StallWatch()

  constructor(readonly spec: ModelSpec) {}

  get name(): string {
    return this.spec.name
  }

  /** Its last real figure, else its file size; remote servers hold nothing here. */
  get estimateBytes(): number {
    if (this.knownMemoryBytes !== null) return this.knownMemoryBytes
    return this.spec.source.kind === 'remote' ? 0 : this.spec.source.sizeBytes
  }

  /** What its current engine holds, or is expected to once loading ends. */
  get ownBytes(): number {
    if (this.state === 'loaded' && this.engine) return this.engine.info.memoryBytes
    return this.state === 'loading' ? this.estimateBytes : 0
  }

  clearIdleTimer(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer)
    this.idleTimer = null
  }
}

const shuttingDown = () => new ApiError(503, 'service_unavailable_error', 'aborted', 'The service is shutting down')
const clientGone = () => new ApiError(503, 'service_unavailable_error', 'aborted', 'The request was cancelled')
const notLoaded = (model: ManagedModel) =>
  new ApiError(503, 'service_unavailable_error', 'model_not_loaded', `The model '${model.name}' ${model.state === 'loading' ? 'is still loading' : 'is not loaded'}`)

export class ModelRegistry {
  private readonly models = new Map<string, ManagedModel>()
  readonly defaultName: string
  /** Engines being unloaded: a load waits for them, so the budget holds while memory is freed. */
  private readonly unloads = new Set<Promise<void>>()
  /** Waiters woken whenever memory may have come free or a load ended. */
  private wakeups: (() => void)[] = []
  private stopped = false

  constructor(
    specs: ModelSpec[],
    private readonly policy: RegistryPolicy,
    private readonly load: (spec: ModelSpec) => Promise<ModelEngine>,
    private readonly log: (message: string) => void,
  ) {
    for (const spec of specs) this.models.set(spec.name, new ManagedModel(spec))
    this.defaultName = (specs.find((s) => s.isDefault) ?? specs[0]).name
  }

  get budgetBytes(): number {
    return this.policy.budgetBytes
  }

  /** Memory the models hold now (estimates for those loading), against the budget. */
  get usedBytes(): number {
    return this.residents().reduce((sum, r) => sum + r.bytes, 0)
  }

  /** The configured name a request's `model` stands for: the default when it names none. */
  resolve(requested: string | undefined): string {
    if (requested === undefined) return this.defaultName
    if (!this.models.has(requested)) throw new ApiError(404, 'not_found_error', 'model_not_found', `The model '${requested}' does not exist`, 'model')
    return requested
  }

  statuses(): ModelStatus[] {
    return [...this.models.keys()].map((name) => this.status(name))
  }

  status(name: string): ModelStatus {
    const m = this.get(name)
    return {
      name: m.name,
      isDefault: m.name === this.defaultName,
      state: m.state,
      unloadReason: m.state === 'unloaded' ? m.unloadReason : null,
      inFlight: m.inFlight,
      memoryBytes: m.ownBytes,
      estimatedMemoryBytes: m.estimateBytes,
      error: m.state === 'failed' ? (m.loadError?.message ?? null) : null,
      counters: m.counters,
      engine: m.state === 'loaded' ? m.engine : null,
    }
  }

  /**
   * Loads a model now, as the service starts (a `loadAtStart` one), after `prepare` (the server
   * fetches the default model with it). Resolves with its engine's info; rejects with the
   * loader's own error (for the log: it may hold paths). Joins a load in progress.
   */
  async preload(name: string, prepare?: () => Promise<void>): Promise<ModelInfo> {
    const model = this.get(name)
    if (this.stopped) throw shuttingDown()
    if (model.state !== 'loaded' && !model.loading) this.startLoad(model, prepare)
    await model.loading
    if (model.state !== 'loaded' || !model.engine) throw model.loadError ?? shuttingDown()
    return model.engine.info
  }

  /** True when the model's local engine has requests but has made no decode step for `stallMs`. */
  isStalled(name: string, stallMs: number): boolean {
    const m = this.get(name)
    // A pool watches its own backends (probes, circuit breaker) and reports them in its health().
    if (m.state !== 'loaded' || !m.engine || m.engine instanceof EnginePool) return false
    return m.stall.stalled(m.engine.metrics(), stallMs)
  }

  /** Waits until `name` is loaded (loading it, making room first), then leases it. */
  async acquire(name: string, limits: WaitLimits): Promise<Lease> {
    const model = this.get(name)
    for (;;) {
      if (this.stopped) throw shuttingDown()
      if (model.state === 'loaded') return this.lease(model)
      // Never loaded by a request: its load at start is what /health reports on.
      if (model.spec.loadAtStart) throw model.state === 'failed' && model.failure ? model.failure : notLoaded(model)
      if (model.loading) {
        await this.waitFor(model.loading, model, limits)
        continue
      }
      if (model.state === 'failed' && model.failure && Date.now() - model.failedAt < this.policy.loadRetryMs) throw model.failure
      const need = model.estimateBytes
      if (need > this.policy.budgetBytes) throw this.tooLarge(model, need)
      const victims = evictionsFor(this.residents(), need, this.policy.budgetBytes)
      if (victims === null) {
        // Only models with requests in flight stand in the way: wait for one to become idle.
        await this.waitFor(this.nextChange(), model, limits)
        continue
      }
      for (const victim of victims) this.unload(this.get(victim), 'evicted')
      this.startLoad(model)
    }
  }

  /** Unloads every model; requests still running end with `aborted`. */
  async stop(): Promise<void> {
    this.stopped = true
    this.wake()
    const models = [...this.models.values()]
    for (const m of models) m.clearIdleTimer()
    await Promise.all(models.map((m) => m.loading))
    await Promise.all(
      models.map((m) => {
        const engine = m.engine
        m.engine = null
        if (m.state === 'loaded') m.state = 'unloaded'
        return engine?.unload()
      }),
    )
    await Promise.all(this.unloads)
  }

  private get(name: string): ManagedModel {
    const model = this.models.get(name)
    if (!model) throw new ApiError(404, 'not_found_error', 'model_not_found', `The model '${name}' does not exist`, 'model')
    return model
  }

  private lease(model: ManagedModel): Lease {
    model.inFlight++
    model.lastUsedAt = Date.now()
    model.clearIdleTimer()
    let released = false
    return {
      engine: model.engine!,
      spec: model.spec,
      release: () => {
        if (released) return
        released = true
        model.inFlight--
        model.lastUsedAt = Date.now()
        if (model.inFlight === 0) {
          // A load larger than its estimate may have left the budget exceeded until now.
          this.enforceBudget(null)
          this.scheduleIdleUnload(model)
        }
        this.wake()
      },
    }
  }

  /** Everything that holds memory: loaded and loading models, and engines still being freed. */
  private residents(pinned: ManagedModel | null = null): Resident[] {
    const out: Resident[] = []
    for (const m of this.models.values()) {
      if (m.unloadingBytes > 0) out.push({ name: `${m.name} (unloading)`, bytes: m.unloadingBytes, lastUsedAt: 0, evictable: false })
      const own = m.ownBytes
      // A model on remote servers holds nothing here, so unloading it would free nothing.
      if (own > 0) {
        out.push({ name: m.name, bytes: own, lastUsedAt: m.lastUsedAt, evictable: m.state === 'loaded' && m.inFlight === 0 && m !== pinned })
      }
    }
    return out
  }

  /** Over budget: every idle model that must go to get under it, least recently used first. */
  private enforceBudget(pinned: ManagedModel | null): void {
    const residents = this.residents(pinned)
    const victims = evictionsFor(residents, 0, this.policy.budgetBytes) ?? residents.filter((r) => r.evictable).map((r) => r.name)
    for (const victim of victims) this.unload(this.get(victim), 'evicted')
  }

  private startLoad(model: ManagedModel, prepare?: () => Promise<void>): void {
    model.state = 'loading'
    model.unloadReason = null
    const pendingUnloads = [...this.unloads]
    model.loading = (async () => {
      await Promise.all(pendingUnloads)
      if (prepare) await prepare()
      const engine = await this.load(model.spec)
      if (this.stopped) {
        await engine.unload()
        throw shuttingDown()
      }
      const bytes = engine.info.memoryBytes
      model.knownMemoryBytes = bytes
      if (bytes > this.policy.budgetBytes) {
        await engine.unload()
        throw this.tooLarge(model, bytes)
      }
      model.engine = engine
      model.state = 'loaded'
      model.failure = null
      model.loadError = null
      model.lastUsedAt = Date.now()
      model.counters.loads++
      model.stall.reset()
      this.log(`model "${model.name}" loaded in ${Math.round(engine.info.loadMs)} ms (${this.loadSummary(engine.info)})`)
      this.enforceBudget(model)
      // Starts its idle clock in case every request that waited for it has given up.
      this.scheduleIdleUnload(model)
    })()
      .catch((err: Error) => this.fail(model, err))
      .finally(() => {
        model.loading = null
        this.wake()
      })
  }

  private fail(model: ManagedModel, err: Error): void {
    model.engine = null
    model.state = 'failed'
    model.failedAt = Date.now()
    model.counters.loadFailures++
    model.loadError = err
    // The detail (file path, llama.cpp's reason) is the operator's; a too-large model is the client's to know.
    model.failure =
      err instanceof ApiError && err.code === 'model_too_large'
        ? err
        : new ApiError(503, 'service_unavailable_error', 'model_not_loaded', `The model '${model.name}' could not be loaded; the server log says why`)
    if (!this.stopped) this.log(`model "${model.name}" failed to load: ${err.message}`)
  }

  /** Context, slots and memory of a load, and the budget's use when there is one. */
  private loadSummary(info: ModelInfo): string {
    const budget = this.policy.budgetBytes
    const use = Number.isFinite(budget) ? `; ${formatBytes(this.usedBytes)} of ${formatBytes(budget)} in use` : ''
    return `context ${info.contextSize}, ${info.parallel} slots, ${formatBytes(info.memoryBytes)}${use}`
  }

  private tooLarge(model: ManagedModel, bytes: number): ApiError {
    return new ApiError(
      503,
      'service_unavailable_error',
      'model_too_large',
      `The model '${model.name}' needs ${formatBytes(bytes)} (weights and KV cache), more than the server's memory budget of ${formatBytes(this.policy.budgetBytes)}`,
      'model',
    )
  }

  private unload(model: ManagedModel, reason: UnloadReason): void {
    const engine = model.engine
    if (!engine) return
    model.clearIdleTimer()
    model.engine = null
    model.state = 'unloaded'
    model.unloadReason = reason
    model.counters.unloads[reason]++
    const bytes = engine.info.memoryBytes
    model.unloadingBytes += bytes
    this.log(`model "${model.name}" unloaded (${reason === 'idle' ? 'idle' : 'its memory is needed for another model'})`)
    const freed: Promise<void> = engine
      .unload()
      .catch(() => undefined)
      .then(() => {
        model.unloadingBytes -= bytes
        this.unloads.delete(freed)
        this.wake()
      })
    this.unloads.add(freed)
  }

  private scheduleIdleUnload(model: ManagedModel): void {
    const ttl = model.spec.idleTtlMs ?? this.policy.idleTtlMs
    model.clearIdleTimer()
    if (ttl === 0 || this.stopped) return
    model.idleTimer = setTimeout(() => {
      model.idleTimer = null
      if (model.state === 'loaded' && model.inFlight === 0) this.unload(model, 'idle')
    }, ttl)
    model.idleTimer.unref()
  }

  private nextChange(): Promise<void> {
    return new Promise((resolve) => this.wakeups.push(resolve))
  }

  private wake(): void {
    for (const wakeup of this.wakeups.splice(0)) wakeup()
  }

  /** Waits for `event`, up to the request's deadline and as long as its client is there. */
  private waitFor(event: Promise<unknown>, model: ManagedModel, { deadlineAt, signal }: WaitLimits): Promise<void> {
    return new Promise((resolve, reject) => {
      if (signal?.aborted) return reject(clientGone())
      const timer = setTimeout(() => {
        settle()
        reject(
          new ApiError(504, 'timeout_error', 'timeout', `The model '${model.name}' was not ready within the request's deadline (it was loading, or waiting for memory that running requests on other models hold)`),
        )
      }, Math.max(0, deadlineAt - Date.now()))
      const onAbort = () => {
        settle()
        reject(clientGone())
      }
      const settle = () => {
        clearTimeout(timer)
        signal?.removeEventListener('abort', onAbort)
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      event.then(
        () => {
          settle()
          resolve()
        },
        () => {
          settle()
          resolve()
        },
      )
    })
  }
}
