// Types of napi-llama's public API (the contract of DESIGN.md §2). The implementation is
// index.js over the generated native binding (binding.js / binding.d.ts).

import type { ReadableStream } from 'node:stream/web'

/** Stable error codes: every failure is an `Error` whose `code` is one of these. */
export type ErrorCodeName =
  | 'MODEL_NOT_LOADED'
  | 'MODEL_LOAD_FAILED'
  | 'INVALID_ARGUMENT'
  | 'CONTEXT_OVERFLOW'
  | 'TIMEOUT'
  | 'ABORTED'
  | 'QUEUE_FULL'
  | 'ALREADY_INITIALIZED'
  | 'INTERNAL'

export declare const ErrorCode: { readonly [K in ErrorCodeName]: K }

/** The error every API rejects or throws with. Assert on `code`, not on `instanceof`. */
export declare class LlamaError extends Error {
  readonly code: ErrorCodeName
}

export interface InitializeOptions {
  /** Path of a `.gguf` model file. `npm run fetch-model` downloads the test models. */
  modelPath: string
  /** Tokens one conversation (one sequence) may hold. Default: min(trained context, 4096). */
  contextSize?: number
  /** Most tokens evaluated in one decode step (prompt chunks are split to this). Default 512. */
  batchSize?: number
  /** llama.cpp threads. Default: the number of physical cores. More than free cores is slower. */
  threads?: number
  /** Layers to offload to a GPU (needs a GPU build). Default 0. */
  gpuLayers?: number
  /**
   * Requests decoded at the same time (slots), all in one batch per step. Default 4. Each slot
   * owns `contextSize` tokens of KV cache, which also serves as its prompt cache.
   */
  parallel?: number
  /**
   * Requests allowed to wait for a slot before `QUEUE_FULL`. Default 64. The engine holds at
   * most `parallel + maxQueue` requests at once; the next one is refused when submitted.
   */
  maxQueue?: number
  /** Memory-map the model file. Default true. */
  useMmap?: boolean
  /** Jinja chat template source, or a llama.cpp built-in family name ('chatml', 'gemma', 'llama3', …). */
  chatTemplate?: string
  /** Timeout applied to requests that set no `timeoutMs`. Default: none. */
  defaultTimeoutMs?: number
  /**
   * Most prompt tokens one decode step evaluates while other requests are streaming, so a long
   * prompt cannot freeze them (it is spread over several steps). Default 128, at most `batchSize`.
   * With nothing streaming, prompts are evaluated `batchSize` tokens per step.
   */
  promptChunkSize?: number
  /** Load progress in [0, 1]. */
  onProgress?: (fraction: number) => void
  /** 'off' | 'error' | 'warn' (default) | 'info' | 'debug' | 'trace'. llama.cpp's own logs appear at 'debug' and 'trace'. Env: NAPI_LLAMA_LOG. */
  logLevel?: 'off' | 'error' | 'warn' | 'info' | 'debug' | 'trace'
  /**
   * Linux 6.12+: ask the scheduler for a 0.1 ms time slice for the thread that loads the model
   * (the event loop), so it runs as soon as it wakes instead of waiting for the inference
   * threads' turn. Its CPU share does not change. Undone when the last engine it loaded shuts
   * down. Ignored on other systems and older kernels. Default false: it cuts event-loop delay
   * p99 from ~4.5 ms to ~1.8 ms on 2 cores, but costs ~7% tokens/s on a 135M model (none
   * measurable on 270M; README "Figures").
   */
  responsiveEventLoop?: boolean
  /**
   * `initialize` only: replace a loaded model instead of failing with `ALREADY_INITIALIZED`.
   * The options are checked first: bad ones reject `INVALID_ARGUMENT` and the loaded model
   * stays. A file that then fails to load leaves no model loaded.
   */
  replace?: boolean
}

export interface ModelInfo {
  modelPath: string
  /** GGUF `general.name`, or the file name. */
  name: string
  /** GGUF `general.architecture`, e.g. 'llama', 'gemma3'. */
  architecture: string
  /** Tokens one conversation may hold. */
  contextSize: number
  trainedContextSize: number
  vocabSize: number
  parameters: number
  sizeBytes: number
  /** 'jinja' when a Jinja template renders chats, else the llama.cpp built-in family name. */
  chatTemplate: string
  /** 'model' (the GGUF's own template), 'option' (`chatTemplate`), or 'builtin-fallback' (the model has none). */
  chatTemplateSource: 'model' | 'option' | 'builtin-fallback'
  parallel: number
  batchSize: number
  threads: number
  /** Layers actually offloaded: 0 on a CPU-only build, whatever `gpuLayers` asked for. */
  gpuLayers: number
  loadMs: number
}

export interface ChatMessage {
  role: 'system' | 'user' | 'assistant'
  content: string
}

export interface GenerateOptions {
  /** Most tokens to generate. Default 512. */
  maxTokens?: number
  /** 0 = greedy (as is anything below 1e-6). Default 0.8. */
  temperature?: number
  /** Default 40; 0 disables. */
  topK?: number
  /** Default 0.95; 1 disables. */
  topP?: number
  /** Default 0.05; 0 disables. */
  minP?: number
  /** Default 1 (off). */
  repeatPenalty?: number
  /** Default 0 (off). */
  frequencyPenalty?: number
  /** Default 0 (off). */
  presencePenalty?: number
  /** Same seed + same input + same options = same output. Default: random. */
  seed?: number
  /** Generation ends before any of these strings; they never appear in the output. */
  stop?: string[]
  /** Reject with `TIMEOUT` after this many ms, queue wait included. */
  timeoutMs?: number
  /** Reject with `ABORTED` when this signal aborts. */
  signal?: AbortSignal
  /** GBNF grammar (root rule `root`) constraining the output. */
  grammar?: string
  /** JSON Schema (object or JSON text) the output must match; converted to a grammar. */
  jsonSchema?: object | string
  /** Id carried in logs and results. Default: generated. */
  requestId?: string
  /**
   * Reuse the longest prefix of this prompt that a free slot already holds (e.g. the earlier
   * turns of the same chat); only the rest is evaluated. Default true.
   */
  cachePrompt?: boolean
  /**
   * When the prompt does not fit the context: 'error' (default) rejects with `CONTEXT_OVERFLOW`;
   * 'drop-oldest' (chat input only) drops the oldest non-system turns until the prompt plus
   * min(maxTokens, contextSize / 4) tokens of reply fit, and reports `droppedMessages`.
   */
  contextOverflow?: 'error' | 'drop-oldest'
  /**
   * Parse control-token text in the input (`<|im_start|>` in a raw prompt or in a message's
   * content) as control tokens. Default false: such text stays text, so a user cannot forge a
   * turn; the chat template's own markers are always control tokens.
   */
  parseSpecialTokens?: boolean
}

export interface Timings {
  /** Waiting for a free slot. */
  queueMs: number
  /** Evaluating the prompt. */
  promptMs: number
  /** Request to first token (queue + prompt). */
  ttftMs: number
  /** First to last token. */
  generateMs: number
  /** Completion tokens per second over `generateMs`. */
  tokensPerSecond: number
}

export interface Generation {
  text: string
  /** 'stop': a stop string matched; 'length': maxTokens or the context end; 'eos': the model ended. */
  finishReason: 'stop' | 'length' | 'eos'
  promptTokens: number
  completionTokens: number
  /** Prompt tokens reused from the cache (not evaluated again). */
  cachedTokens: number
  /** Chat messages dropped to fit the context (`contextOverflow: 'drop-oldest'`); else 0. */
  droppedMessages: number
  timings: Timings
  requestId: string
}

/** A piece of streamed text: always whole UTF-8, never part of a stop string. */
export interface StreamTextChunk {
  text: string
  /** Tokens this piece covers. */
  tokens: number
  done: false
}

/**
 * The last chunk: empty text, and the Generation's fields (full text in `generation.text`).
 * `tokens` counts generated tokens no earlier chunk covered (e.g. a character cut off by
 * maxTokens), so the chunks' `tokens` add up to `completionTokens`.
 */
export interface StreamFinalChunk extends Omit<Generation, 'text'> {
  text: ''
  tokens: number
  done: true
  generation: Generation
}

export type StreamChunk = StreamTextChunk | StreamFinalChunk

export interface Health {
  status: 'loading' | 'ok' | 'unloaded' | 'error'
  modelName: string | null
  contextSize: number
  uptimeMs: number
  /** The last load failure, decode failure or caught panic; null when there was none. */
  lastError: string | null
  /** Slots generating now; a request has left its slot by the time its promise resolves or its stream ends. */
  slotsBusy: number
  slotsTotal: number
  /** Requests waiting for a slot, counted from the moment generate()/stream() returns. */
  queueDepth: number
}

export interface Metrics {
  requestsTotal: number
  requestsCompleted: number
  requestsFailed: number
  requestsAborted: number
  requestsTimedOut: number
  requestsActive: number
  requestsQueued: number
  promptTokensTotal: number
  completionTokensTotal: number
  /** Prompt tokens reused from slot caches. */
  cachedTokensTotal: number
  /** Requests that reused at least one cached prompt token. */
  cacheHits: number
  /** Prompt tokens actually evaluated (prompt minus cached). */
  promptTokensEvaluated: number
  /** `decode` calls; each carries the tokens of every active request. */
  decodeCalls: number
  promptMsTotal: number
  generateMsTotal: number
  lastTtftMs: number
  lastTokensPerSecond: number
  /** Aggregate prompt evaluation speed (each step's time split by token kind). */
  promptTokensPerSecond: number
  /** Aggregate generation speed over all slots. */
  decodeTokensPerSecond: number
  /** Time to first token over the last 1024 requests. */
  ttftP50Ms: number
  ttftP95Ms: number
  ttftP99Ms: number
  slotsBusy: number
  slotsTotal: number
  queueDepth: number
  uptimeMs: number
}

export type Input = string | ChatMessage[]

/**
 * Loads the default engine. Rejects with `MODEL_LOAD_FAILED` (bad file), `INVALID_ARGUMENT`
 * (bad options) or `ALREADY_INITIALIZED` (a model is loaded or loading; pass `replace: true`).
 */
export declare function initialize(options: InitializeOptions): Promise<ModelInfo>
/** Generates a completion (string input) or a chat reply (messages, rendered with the model's template). */
export declare function generate(input: Input, options?: GenerateOptions): Promise<Generation>
/** Streams the reply; use `for await`. Breaking out of the loop stops generation within one decode step. */
export declare function stream(input: Input, options?: GenerateOptions): ReadableStream<StreamChunk>
/** Never throws. */
export declare function health(): Health
export declare function metrics(): Metrics
/** Token ids of `text` (no BOS; special-token text stays text). */
export declare function tokenize(text: string): Uint32Array
/** Text of token ids; `detokenize(tokenize(s)) === s` for any well-formed string (a lone surrogate half becomes U+FFFD, as in any UTF-8 encoding). */
export declare function detokenize(tokens: Uint32Array | number[]): string
/** Prompt tokens an input costs (chat input is rendered with the template first). */
export declare function countTokens(input: Input): number
/** Cancels in-flight work (it rejects with `ABORTED`) and frees the model. Safe to call twice. */
export declare function shutdown(): Promise<void>

/** One loaded model with its own inference thread; several may be loaded at once. */
export declare class Engine {
  /** Engines are created by `Engine.load()`; `new Engine()` throws INVALID_ARGUMENT. */
  private constructor()
  static load(options: Omit<InitializeOptions, 'replace'>): Promise<Engine>
  readonly info: ModelInfo
  generate(input: Input, options?: GenerateOptions): Promise<Generation>
  stream(input: Input, options?: GenerateOptions): ReadableStream<StreamChunk>
  tokenize(text: string): Uint32Array
  detokenize(tokens: Uint32Array | number[]): string
  countTokens(input: Input): number
  health(): Health
  metrics(): Metrics
  /** Cancels in-flight work and frees the model. Safe to call twice. */
  unload(): Promise<void>
}
