// The model: napi-llama's default engine (`initialize` / `generate` / `stream`) when replies are
// generated here (LLM_BACKENDS=local, the default), else a napi-llama pool over the configured
// backends (remote llama-server / vLLM, and this process when `local` is among them). This
// module owns the load state the HTTP layer reports and applies the service's policy to every
// request: default sampling, the max-tokens cap and the per-request deadline.
import path from 'node:path'
import * as llama from 'napi-llama'
import type { BackendHealth, ChatMessage, EnginePool, GenerateOptions, Generation, Health, Metrics, ModelInfo, PoolMember, PoolMetrics, StreamChunk } from 'napi-llama'
import type { ReadableStream } from 'node:stream/web'
import type { Config } from './config'

export type LlmState = 'idle' | 'loading' | 'ready' | 'failed' | 'stopped'

/** What a route may choose per request; everything else is the service's policy. */
export interface ReplyOptions {
  maxTokens?: number
  temperature?: number
  topP?: number
  presencePenalty?: number
  frequencyPenalty?: number
  seed?: number
  stop?: string[]
  jsonSchema?: object
  contextOverflow?: 'error' | 'drop-oldest'
  requestId?: string
  signal?: AbortSignal
}

export class LlmService {
  private currentState: LlmState = 'idle'
  private loaded: ModelInfo | null = null
  private failure: string | null = null
  private loading: Promise<ModelInfo> | null = null
  private lastDecodeCalls = 0
  private lastProgressAt = Date.now()
  /** The pool over LLM_BACKENDS, when they are not just `local`. */
  private pool: EnginePool | null = null

  constructor(private readonly config: Config) {}

  get state(): LlmState {
    return this.currentState
  }

  get info(): ModelInfo | null {
    return this.loaded
  }

  get loadError(): string | null {
    return this.failure
  }

  /** True when replies come from a pool over LLM_BACKENDS rather than this process alone. */
  get pooled(): boolean {
    const b = this.config.backends
    return !(b.length === 1 && b[0].kind === 'local')
  }

  /**
   * The id `/v1/models` reports: the model file's name without `.gguf` (for remote backends,
   * the name of the model they serve).
   */
  get modelId(): string {
    const local = this.config.backends.some((b) => b.kind === 'local')
    const file = local ? this.config.modelPath : this.loaded?.name || 'remote'
    return path.basename(file).replace(/\.gguf$/i, '')
  }

  /** Each backend's state when replies come from a pool; null otherwise. */
  backends(): BackendHealth[] | null {
    return this.pool ? this.pool.health().backends : null
  }

  /**
   * Loads the model; safe to call again while loading (same promise). `prepare` runs first, in
   * the loading state (the server uses it to fetch the default model on first start).
   */
  start(prepare?: () => Promise<void>): Promise<ModelInfo> {
    if (this.loading) return this.loading
    this.currentState = 'loading'
    this.failure = null
    const load = async (): Promise<ModelInfo> => {
      if (prepare) await prepare()
      const options: llama.InitializeOptions = {
        modelPath: this.config.modelPath,
        contextSize: this.config.contextSize,
        threads: this.config.threads,
        gpuLayers: this.config.gpuLayers,
        parallel: this.config.parallel,
        maxQueue: this.config.maxQueue,
        defaultTimeoutMs: this.config.timeoutMs,
        promptCacheBytes: mib(this.config.promptCacheMb),
        promptCacheDir: this.config.promptCacheDir,
        promptCacheDiskBytes: mib(this.config.promptCacheDiskMb),
      }
      // `__faults` is napi-llama's test-only hook, deliberately not in its public types.
      if (this.config.faults) Object.assign(options, { __faults: this.config.faults })
      if (!this.pooled) return llama.initialize(options)
      const members: PoolMember[] = await Promise.all(
        this.config.backends.map((b) =>
          b.kind === 'local'
            ? llama.Engine.load(options)
            : llama.Engine.connect({
                baseURL: b.url,
                // A key in the URL (http://:KEY@host) is that backend's own and wins.
                apiKey: new URL(b.url).password ? undefined : this.config.backendApiKey,
                timeoutMs: this.config.timeoutMs,
              }),
        ),
      )
      const pool = llama.Engine.pool(members, { timeoutMs: this.config.timeoutMs, maxQueue: this.config.maxQueue })
      this.pool = pool
      return pool.info
    }
    const loading = load().then(
      (info) => {
        // stop() during the load wins: the model it loaded is freed by that stop's shutdown.
        if (this.loading !== loading) return info
        this.loaded = info
        this.currentState = 'ready'
        this.lastProgressAt = Date.now()
        return info
      },
      (err: Error) => {
        if (this.loading === loading) {
          this.failure = err.message
          this.currentState = 'failed'
          this.loading = null
        }
        throw err
      },
    )
    this.loading = loading
    return loading
  }

  /**
   * True while requests are active but no decode step has finished for `stallMs`: the inference
   * thread is stuck, so the model does not answer even though it is loaded.
   */
  isStalled(stallMs: number): boolean {
    // A pool watches its own backends (probes, circuit breaker) and reports them in health().
    if (this.currentState !== 'ready' || this.pool) return false
    const m = llama.metrics()
    const now = Date.now()
    if (m.requestsActive === 0 || m.decodeCalls !== this.lastDecodeCalls) {
      this.lastDecodeCalls = m.decodeCalls
      this.lastProgressAt = now
      return false
    }
    return now - this.lastProgressAt > stallMs
  }

  generate(messages: ChatMessage[], options: ReplyOptions): Promise<Generation> {
    if (this.pool) return this.pool.generate(messages, this.requestOptions(options))
    return llama.generate(messages, this.requestOptions(options))
  }

  stream(messages: ChatMessage[], options: ReplyOptions): ReadableStream<StreamChunk> {
    if (this.pool) return this.pool.stream(messages, this.requestOptions(options))
    return llama.stream(messages, this.requestOptions(options))
  }

  health(): Health {
    if (this.pool) {
      const { backends: _backends, ...health } = this.pool.health()
      return health
    }
    return llama.health()
  }

  /** The engine's counters (all zero while no model is loaded); a pool adds its backends'. */
  metrics(): Metrics | PoolMetrics {
    if (this.pool) return this.pool.metrics()
    return llama.metrics()
  }

  /** Cancels in-flight requests and frees the model. */
  async stop(): Promise<void> {
    const loading = this.loading
    this.currentState = 'stopped'
    this.loading = null
    this.loaded = null
    // A load in flight finishes first, so that shutdown() frees what it loaded.
    if (loading) await loading.catch(() => undefined)
    const pool = this.pool
    this.pool = null
    if (pool) await pool.unload()
    await llama.shutdown()
  }

  private requestOptions(options: ReplyOptions): GenerateOptions {
    const requested = options.maxTokens ?? this.config.maxTokens
    return {
      maxTokens: Math.min(requested, this.config.maxTokens),
      temperature: options.temperature ?? this.config.temperature,
      topP: options.topP ?? this.config.topP,
      // A remote server of the plain OpenAI kind has no repeat penalty: send it only when asked.
      repeatPenalty: this.pooled && !this.config.repeatPenaltyIsSet ? undefined : this.config.repeatPenalty,
      presencePenalty: options.presencePenalty,
      frequencyPenalty: options.frequencyPenalty,
      seed: options.seed,
      stop: options.stop,
      jsonSchema: options.jsonSchema,
      contextOverflow: options.contextOverflow ?? 'error',
      requestId: options.requestId,
      signal: options.signal,
      timeoutMs: this.config.timeoutMs,
    }
  }
}

function mib(n: number | undefined): number | undefined {
  return n === undefined ? undefined : n * 1024 * 1024
}
