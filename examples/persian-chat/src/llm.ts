// The models replies come from, and the service's policy on every request: default sampling,
// the max-tokens cap and the per-request deadline (queue wait, and a model's load, included).
//  - One model (LLM_MODEL_PATH): napi-llama's default engine (`initialize` / `generate` /
//    `stream`) when replies are generated here (LLM_BACKENDS=local, the default), else a pool
//    over the configured backends (remote llama-server / vLLM, and this process when `local` is
//    among them). This module owns the load state the HTTP layer reports.
//  - Several models (LLM_MODELS_FILE): an engine per loaded model, loaded, unloaded and evicted
//    by the registry (multi-model/registry.ts); each request names its model.
import path from 'node:path'
import * as llama from 'napi-llama'
import type { BackendHealth, ChatMessage, EnginePool, GenerateOptions, Generation, Health, Metrics, ModelInfo, PoolMember, PoolMetrics, StreamChunk, ToolChoice, ToolDefinition } from 'napi-llama'
import type { ReadableStream } from 'node:stream/web'
import type { Config } from './config'
import { connectBackend, engineLoadOptions, modelLoader } from './multi-model/loader'
import type { ModelSpec } from './multi-model/models-file'
import { ModelRegistry } from './multi-model/registry'
import { LOAD_RETRY_MS } from './retrieval'
import { replyStream } from './reply-stream'
import { StallWatch } from './stall-watch'

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
  tools?: ToolDefinition[]
  toolChoice?: ToolChoice
  parallelToolCalls?: boolean
  contextOverflow?: 'error' | 'drop-oldest'
  requestId?: string
  signal?: AbortSignal
  /** The model to answer with: what `resolveModel` gave for the request. */
  model?: string
  /** Who the tokens count against in /metrics: the API key's name. */
  client?: string
}

/** Tokens one finished reply took, for cost tracking per client and model. */
export interface TokenUsage {
  client: string
  model: string
  promptTokens: number
  completionTokens: number
}

/** The sampling defaults and reply cap a request starts from. */
interface ReplyDefaults extends Pick<Config, 'maxTokens' | 'temperature' | 'topP' | 'repeatPenalty'> {
  /**
   * Whether repeatPenalty goes out: a remote server of the plain OpenAI kind has none, so it is
   * sent there only when the operator set it.
   */
  sendRepeatPenalty: boolean
  /** When the request's deadline was set, if it started before the request waited for its model. */
  deadlineAt?: number
}

export class LlmService {
  private currentState: LlmState = 'idle'
  private loaded: ModelInfo | null = null
  private failure: string | null = null
  private loading: Promise<ModelInfo> | null = null
  private readonly stall = new StallWatch()
  /** The pool over LLM_BACKENDS, when they are not just `local`. */
  private pool: EnginePool | null = null
  /** The models of LLM_MODELS_FILE; null with one model. */
  readonly registry: ModelRegistry | null
  private readonly usageListeners: ((usage: TokenUsage) => void)[] = []

  constructor(private readonly config: Config) {
    this.registry = config.models
      ? new ModelRegistry(
          config.models,
          { budgetBytes: config.memoryBudgetBytes, idleTtlMs: config.modelIdleTtlMs, loadRetryMs: LOAD_RETRY_MS },
          modelLoader(config),
          (message) => process.stderr.write(`[persian-chat] ${message}\n`),
        )
      : null
  }

  /** Calls `listener` with the tokens of every reply that finishes. */
  onUsage(listener: (usage: TokenUsage) => void): void {
    this.usageListeners.push(listener)
  }

  /**
   * The model id a request's `model` stands for. Several models: its configured name (the
   * default's when it names none), 404 `model_not_found` when none has that name. One model: that
   * model's id, whatever the request names (clients that send a fixed name keep working).
   */
  resolveModel(requested: string | undefined): string {
    return this.registry ? this.registry.resolve(requested) : this.modelId
  }

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
   * the name of the model they serve); with several models, the default one's name.
   */
  get modelId(): string {
    if (this.registry) return this.registry.defaultName
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
  /**
   * With several models, each loads on its first request: this only opens the service (null).
   */
  start(prepare?: () => Promise<void>): Promise<ModelInfo | null> {
    if (this.registry) {
      this.currentState = 'ready'
      return Promise.resolve(null)
    }
    if (this.loading) return this.loading
    this.currentState = 'loading'
    this.failure = null
    const load = async (): Promise<ModelInfo> => {
      if (prepare) await prepare()
      const options = engineLoadOptions(this.config, this.config.modelPath)
      if (!this.pooled) return llama.initialize(options)
      const members: PoolMember[] = await Promise.all(
        this.config.backends.map((b) => (b.kind === 'local' ? llama.Engine.load(options) : connectBackend(this.config, b.url))),
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
        this.stall.reset()
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
    if (this.currentState !== 'ready' || this.pool || this.registry) return false
    return this.stall.stalled(llama.metrics(), stallMs)
  }

  async generate(messages: ChatMessage[], options: ReplyOptions): Promise<Generation> {
    const model = options.model ?? this.modelId
    let generation: Generation
    if (this.registry) {
      const deadlineAt = Date.now() + this.config.timeoutMs
      const lease = await this.registry.acquire(model, { deadlineAt, signal: options.signal })
      try {
        generation = await lease.engine.generate(messages, this.requestOptions(options, this.modelDefaults(lease.spec, deadlineAt)))
      } finally {
        lease.release()
      }
    } else {
      const request = this.requestOptions(options, this.serviceDefaults())
      generation = await (this.pool ? this.pool.generate(messages, request) : llama.generate(messages, request))
    }
    this.countUsage(options, model, generation)
    return generation
  }

  stream(messages: ChatMessage[], options: ReplyOptions): ReadableStream<StreamChunk> {
    const model = options.model ?? this.modelId
    const registry = this.registry
    const countUsage = (final: Omit<Generation, 'text'>) => this.countUsage(options, model, final)
    if (registry) {
      const deadlineAt = Date.now() + this.config.timeoutMs
      return replyStream(async () => {
        const lease = await registry.acquire(model, { deadlineAt, signal: options.signal })
        const request = this.requestOptions(options, this.modelDefaults(lease.spec, deadlineAt))
        return { stream: lease.engine.stream(messages, request), release: () => lease.release() }
      }, countUsage)
    }
    const request = this.requestOptions(options, this.serviceDefaults())
    const stream = this.pool ? this.pool.stream(messages, request) : llama.stream(messages, request)
    return replyStream(async () => ({ stream }), countUsage)
  }

  private countUsage(options: ReplyOptions, model: string, g: Omit<Generation, 'text'>): void {
    const usage = { client: options.client ?? 'anonymous', model, promptTokens: g.promptTokens, completionTokens: g.completionTokens }
    for (const listener of this.usageListeners) listener(usage)
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

  /** Cancels in-flight requests and frees the model (every model, with several). */
  async stop(): Promise<void> {
    if (this.registry) {
      this.currentState = 'stopped'
      await this.registry.stop()
      return
    }
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

  private serviceDefaults(): ReplyDefaults {
    return { ...this.config, sendRepeatPenalty: !this.pooled || this.config.repeatPenaltyIsSet }
  }

  /** A models-file entry's own settings over the service's. */
  private modelDefaults(spec: ModelSpec, deadlineAt: number): ReplyDefaults {
    const { maxTokens, temperature, topP, repeatPenalty } = spec
    const own = Object.fromEntries(Object.entries({ maxTokens, temperature, topP, repeatPenalty }).filter(([, v]) => v !== undefined))
    const sendRepeatPenalty = spec.source.kind === 'file' || this.config.repeatPenaltyIsSet || repeatPenalty !== undefined
    return { ...this.config, ...own, sendRepeatPenalty, deadlineAt }
  }

  private requestOptions(options: ReplyOptions, defaults: ReplyDefaults): GenerateOptions {
    const deadlineAt = defaults.deadlineAt
    const requested = options.maxTokens ?? defaults.maxTokens
    return {
      maxTokens: Math.min(requested, defaults.maxTokens),
      temperature: options.temperature ?? defaults.temperature,
      topP: options.topP ?? defaults.topP,
      repeatPenalty: defaults.sendRepeatPenalty ? defaults.repeatPenalty : undefined,
      presencePenalty: options.presencePenalty,
      frequencyPenalty: options.frequencyPenalty,
      seed: options.seed,
      stop: options.stop,
      jsonSchema: options.jsonSchema,
      tools: options.tools,
      toolChoice: options.toolChoice,
      parallelToolCalls: options.parallelToolCalls,
      contextOverflow: options.contextOverflow ?? 'error',
      requestId: options.requestId,
      signal: options.signal,
      timeoutMs: deadlineAt === undefined ? this.config.timeoutMs : Math.max(1, deadlineAt - Date.now()),
    }
  }
}
