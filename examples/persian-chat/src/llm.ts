// The models replies come from, and the service's policy on every request: default sampling,
// the max-tokens cap and the per-request deadline (queue wait, and a model's load, included).
// Every model is an engine of its own (`Engine.load()`, or a pool over remote servers), held by
// the registry (multi-model/registry.ts):
//  - One model (LLM_MODEL_PATH, LLM_BACKENDS): a one-entry registry, loaded at start and kept
//    until the service stops; this module reports its load state as the service's.
//  - Several models (LLM_MODELS_FILE): loaded, unloaded and evicted by the registry; each request
//    names its model.
import type { BackendHealth, ChatMessage, GenerateOptions, Generation, Health, Metrics, ModelInfo, PoolHealth, PoolMetrics, StreamChunk, ToolChoice, ToolDefinition } from 'napi-llama'
import type { ReadableStream } from 'node:stream/web'
import type { Config } from './config'
import { envModelSpec, modelIdOf } from './multi-model/env-model'
import { modelLoader } from './multi-model/loader'
import type { ModelSpec } from './multi-model/models-file'
import { type ModelState, type ModelStatus, ModelRegistry } from './multi-model/registry'
import { LOAD_RETRY_MS } from './retrieval'
import { type SpentTokens, replyStream } from './reply-stream'

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

/** Tokens one reply took, for cost tracking per client and model. */
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
  /** When the request's deadline passes: it started before the request waited for its model. */
  deadlineAt: number
}

/** The service's state with one model, from its model's. */
const SERVICE_STATE: Record<ModelState, LlmState> = { configured: 'idle', loading: 'loading', loaded: 'ready', failed: 'failed', unloaded: 'stopped' }

export class LlmService {
  /** Every model the service serves: those of LLM_MODELS_FILE, or the one of LLM_MODEL_PATH. */
  private readonly models: ModelRegistry
  /** The one model's spec; null with several. */
  private readonly onlySpec: ModelSpec | null
  private started = false
  private stopped = false
  private readonly usageListeners: ((usage: TokenUsage) => void)[] = []

  constructor(private readonly config: Config) {
    const specs = config.models ?? [envModelSpec(config)]
    this.onlySpec = config.models ? null : specs[0]
    // LLM_MEMORY_BUDGET is the models file's: one model has no other to make room for.
    const policy = { budgetBytes: config.models ? config.memoryBudgetBytes : Infinity, idleTtlMs: config.modelIdleTtlMs, loadRetryMs: LOAD_RETRY_MS }
    this.models = new ModelRegistry(specs, policy, modelLoader(config), (message) => process.stderr.write(`[persian-chat] ${message}\n`))
  }

  /**
   * The models of LLM_MODELS_FILE, as /health, /metrics and /v1/models list them; null with one
   * model, which this service's own state, health() and metrics() stand for.
   */
  get registry(): ModelRegistry | null {
    return this.onlySpec ? null : this.models
  }

  /**
   * Calls `listener` with the tokens of every reply that finishes, and of every streamed reply
   * cut short after tokens were sent (its completion tokens only: see replyStream).
   */
  onUsage(listener: (usage: TokenUsage) => void): void {
    this.usageListeners.push(listener)
  }

  /**
   * The model id a request's `model` stands for. Several models: its configured name (the
   * default's when it names none), 404 `model_not_found` when none has that name. One model: that
   * model's id, whatever the request names (clients that send a fixed name keep working).
   */
  resolveModel(requested: string | undefined): string {
    return this.onlySpec ? this.modelId : this.models.resolve(requested)
  }

  get state(): LlmState {
    if (this.stopped) return 'stopped'
    if (this.onlySpec) return SERVICE_STATE[this.only.state]
    return this.started ? 'ready' : 'idle'
  }

  /** The one model's, while it is loaded. */
  get info(): ModelInfo | null {
    return this.onlySpec ? (this.only.engine?.info ?? null) : null
  }

  /** Why the one model's load failed (for operators: it may hold paths). */
  get loadError(): string | null {
    return this.onlySpec ? this.only.error : null
  }

  /**
   * The id `/v1/models` reports: the model file's name without `.gguf` (for remote backends,
   * the name of the model they serve); with several models, the default one's name.
   */
  get modelId(): string {
    const spec = this.onlySpec
    if (!spec) return this.models.defaultName
    const engine = this.only.engine
    return spec.source.kind === 'remote' && engine ? modelIdOf(engine.info.name) : spec.name
  }

  /** Each backend's state when the one model's replies come from a pool; null otherwise. */
  backends(): BackendHealth[] | null {
    const health = this.health()
    return health && 'backends' in health ? (health as PoolHealth).backends : null
  }

  /**
   * Loads the one model; safe to call again while it loads (the same load). `prepare` runs
   * first, in the loading state (the server uses it to fetch the default model on first start).
   * With several models, each loads on its first request: this only opens the service (null).
   */
  async start(prepare?: () => Promise<void>): Promise<ModelInfo | null> {
    this.started = true
    return this.onlySpec ? this.models.preload(this.onlySpec.name, prepare) : null
  }

  /**
   * True while the one model's requests are active but no decode step has finished for
   * `stallMs`: the inference thread is stuck, so the model does not answer even though it is loaded.
   */
  isStalled(stallMs: number): boolean {
    return this.onlySpec !== null && this.models.isStalled(this.onlySpec.name, stallMs)
  }

  async generate(messages: ChatMessage[], options: ReplyOptions): Promise<Generation> {
    const model = options.model ?? this.modelId
    const deadlineAt = Date.now() + this.config.timeoutMs
    const lease = await this.models.acquire(this.entryOf(model), { deadlineAt, signal: options.signal })
    let generation: Generation
    try {
      generation = await lease.engine.generate(messages, this.requestOptions(options, this.modelDefaults(lease.spec, deadlineAt)))
    } finally {
      lease.release()
    }
    this.countUsage(options, model, generation)
    return generation
  }

  stream(messages: ChatMessage[], options: ReplyOptions): ReadableStream<StreamChunk> {
    const model = options.model ?? this.modelId
    const deadlineAt = Date.now() + this.config.timeoutMs
    return replyStream(
      async () => {
        const lease = await this.models.acquire(this.entryOf(model), { deadlineAt, signal: options.signal })
        const request = { ...this.requestOptions(options, this.modelDefaults(lease.spec, deadlineAt)), streamIntervalMs: this.config.streamIntervalMs }
        return { stream: lease.engine.stream(messages, request), release: () => lease.release() }
      },
      (spent) => this.countUsage(options, model, spent),
    )
  }

  /** The one model's engine health while it is loaded; a pool's has its backends too. */
  health(): Health | PoolHealth | null {
    return this.onlySpec ? (this.only.engine?.health() ?? null) : null
  }

  /** The one model's engine counters while it is loaded; a pool adds its backends'. */
  metrics(): Metrics | PoolMetrics | null {
    return this.onlySpec ? (this.only.engine?.metrics() ?? null) : null
  }

  /** Cancels in-flight requests and frees every model. */
  async stop(): Promise<void> {
    this.stopped = true
    await this.models.stop()
  }

  private get only(): ModelStatus {
    return this.models.status(this.onlySpec!.name)
  }

  /** The registry entry a resolved model id names: with one model, its id may be the remote servers' name. */
  private entryOf(model: string): string {
    return this.onlySpec ? this.onlySpec.name : model
  }

  private countUsage(options: ReplyOptions, model: string, spent: SpentTokens): void {
    const usage = { client: options.client ?? 'anonymous', model, promptTokens: spent.promptTokens, completionTokens: spent.completionTokens }
    for (const listener of this.usageListeners) listener(usage)
  }

  /** A model's own settings over the service's (the one model of LLM_MODEL_PATH has none). */
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
      timeoutMs: Math.max(1, deadlineAt - Date.now()),
    }
  }
}
