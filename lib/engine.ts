// The Engine class: the callback-based NativeEngine (binding.js) as Promises, web
// ReadableStreams and LlamaErrors.
import type { ReadableStream, ReadableStreamDefaultController } from 'node:stream/web'
import { NativeEngine } from '../binding'
import type * as binding from '../binding'
import { ErrorCode, LlamaError, abortedError, fromFailure, invalid, toError } from './errors'
import { embedOptions, generateOptions, loadOptions, nativeInput, textList } from './options'
import type { ConnectOptions, EmbedOptions, GenerateOptions, InitializeOptions, Input, ParsedLoadOptions, ParsedRequestOptions, PoolOptions } from './options'
import { RemoteEngine } from './remote/remote-engine'
import { EnginePool } from './pool/pool-engine'
import type { PoolMember } from './pool/backend'

type Generation = binding.Generation
type Metrics = binding.Metrics
type ModelInfo = binding.ModelInfo

export interface Health extends Omit<binding.Health, 'modelName' | 'lastError'> {
  /** The loaded model's `general.name` (else its file name); null when none is loaded. */
  modelName: string | null
  /** The last load failure, decode failure or caught panic; null when there was none. */
  lastError: string | null
}

/** A piece of streamed text: always whole UTF-8, never part of a stop string. */
export interface StreamTextChunk {
  type: 'text'
  text: string
  /** Tokens this piece covers. */
  tokens: number
  done: false
}

/**
 * A piece of a thinking model's reasoning (`reasoning: 'separate'`). Its `text` is empty, so
 * code that joins chunks' `text` gets the reply alone.
 */
export interface StreamReasoningChunk {
  type: 'reasoning'
  text: ''
  reasoning: string
  tokens: number
  done: false
}

/**
 * A piece of a tool call: a call's first piece carries its `id` and `name`, later pieces more
 * of its `arguments` (JSON text, in order). Call markup never appears in text chunks.
 */
export interface StreamToolCallChunk {
  type: 'toolCall'
  text: ''
  toolCall: binding.ToolCallDelta
  tokens: number
  done: false
}

/**
 * The last chunk: empty text, and the Generation's fields (full text in `generation.text`).
 * `tokens` counts generated tokens no earlier chunk covered (e.g. a character cut off by
 * maxTokens), so the chunks' `tokens` add up to `completionTokens`.
 */
export interface StreamFinalChunk extends Omit<Generation, 'text'> {
  type: 'done'
  text: ''
  tokens: number
  done: true
  generation: Generation
}

export type StreamChunk = StreamTextChunk | StreamReasoningChunk | StreamToolCallChunk | StreamFinalChunk

/**
 * Extra time the JS-side timer gives the engine. The engine checks the deadline between
 * decode steps and answers first (counting the timeout in metrics() as it does); the timer
 * is for an engine that cannot look, such as one still tokenizing a long prompt ahead of
 * this request.
 */
const TIMEOUT_GRACE_MS = 1000

/**
 * What a request listens to besides the engine: its AbortSignal, and a timer for its
 * deadline, so TIMEOUT arrives even while the engine is busy preparing a long prompt ahead
 * of it. The engine enforces the deadline too and cleans up after either.
 * A caller's signal that throws from add/removeEventListener cannot break a request.
 */
function watchRequest(signal: AbortSignal | null, timeoutMs: number | null, onAbort: () => void, onTimeout: () => void): () => void {
  let timer: ReturnType<typeof setTimeout> | null = null
  if (timeoutMs !== null) {
    timer = setTimeout(onTimeout, timeoutMs + TIMEOUT_GRACE_MS)
    if (typeof timer.unref === 'function') timer.unref()
  }
  if (signal) {
    try {
      signal.addEventListener('abort', onAbort, { once: true })
    } catch (err) {
      if (timer) clearTimeout(timer)
      throw invalid(`signal.addEventListener threw (${err && (err as { message?: unknown }).message}): pass an AbortSignal`)
    }
  }
  return () => {
    if (timer) clearTimeout(timer)
    if (signal) {
      try {
        signal.removeEventListener('abort', onAbort)
      } catch (_) {
        // The request is over either way.
      }
    }
  }
}

function timeoutError(ms: number): LlamaError {
  return new LlamaError(
    ErrorCode.TIMEOUT,
    `the request did not finish within timeoutMs = ${ms} (queue wait included): raise timeoutMs or lower maxTokens`,
  )
}

// A plain object of this realm with the documented fields, whatever else napi put on it.
function toGeneration(g: Generation): Generation {
  const generation: Generation = {
    text: g.text,
    finishReason: g.finishReason,
    promptTokens: g.promptTokens,
    completionTokens: g.completionTokens,
    cachedTokens: g.cachedTokens,
    droppedMessages: g.droppedMessages,
    timings: { ...g.timings },
    requestId: g.requestId,
  }
  if (g.reasoningText !== undefined && g.reasoningText !== null) generation.reasoningText = g.reasoningText
  if (g.toolCalls !== undefined && g.toolCalls !== null) generation.toolCalls = g.toolCalls.map((c) => ({ id: c.id, name: c.name, arguments: c.arguments }))
  return generation
}

/**
 * A structured reply's change as stream chunks: reasoning, text, then a tool-call piece, each
 * only when present. The delta's tokens go with its first chunk, so chunk tokens still add up.
 */
function deltaChunks(delta: binding.ReplyDelta): StreamChunk[] {
  const chunks: StreamChunk[] = []
  if (delta.reasoning) chunks.push({ type: 'reasoning', text: '', reasoning: delta.reasoning, tokens: 0, done: false })
  if (delta.text) chunks.push({ type: 'text', text: delta.text, tokens: 0, done: false })
  const call = delta.toolCall
  if (call) chunks.push({ type: 'toolCall', text: '', toolCall: { index: call.index, id: call.id, name: call.name, arguments: call.arguments }, tokens: 0, done: false })
  if (chunks.length > 0) chunks[0].tokens = delta.tokens
  return chunks
}

/** `embed()`'s result: one vector per text, in input order. */
export interface Embeddings extends Array<Float32Array> {
  /** Tokens evaluated over all texts (what `usage.prompt_tokens` reports). */
  promptTokens: number
}

/** `rank()`'s result: one score per document, in input order. */
export interface Scores extends Array<number> {
  /** Tokens evaluated over all query and document pairs. */
  promptTokens: number
}

const readTexts = textList('texts')
const readDocuments = textList('documents')

/** One loaded model with its own inference thread; several may be loaded at once. */
export class Engine {
  readonly info: ModelInfo
  private readonly _native: NativeEngine
  private _stopping: Promise<void> | null = null
  private readonly _defaultTimeoutMs: number | null

  /** Engines are created by `Engine.load()`; `new Engine()` throws INVALID_ARGUMENT. */
  private constructor(native: NativeEngine, info: ModelInfo, defaultTimeoutMs: number | undefined) {
    if (!native || typeof native.submit !== 'function') {
      throw invalid('an Engine is created by Engine.load(options), not new Engine()')
    }
    this._native = native
    this.info = info
    this._defaultTimeoutMs = typeof defaultTimeoutMs === 'number' && defaultTimeoutMs >= 1 ? defaultTimeoutMs : null
  }

  static load(options: Omit<InitializeOptions, 'replace'>): Promise<Engine> {
    let parsed: ParsedLoadOptions
    try {
      parsed = loadOptions(options)
    } catch (err) {
      return Promise.reject(toError(err))
    }
    return Engine._start(parsed)
  }

  /**
   * An engine over an OpenAI-compatible server (llama-server, vLLM, …): the same generate,
   * stream and error codes; tokenize, detokenize and countTokens return Promises. A server
   * that cannot be reached yet still gives an engine (its requests reject `UNAVAILABLE`).
   */
  static connect(options: ConnectOptions | string): Promise<RemoteEngine> {
    return RemoteEngine.connect(options).catch((err) => Promise.reject(toError(err)))
  }

  /**
   * One engine over several (local and remote mixed): least-loaded routing, conversation
   * affinity, readiness probes with a circuit breaker, and retries before the first byte.
   * The pool owns its engines: `unload()` unloads them all.
   */
  static pool(engines: ReadonlyArray<PoolMember>, options?: PoolOptions): EnginePool {
    try {
      return new EnginePool(engines, options)
    } catch (err) {
      throw toError(err)
    }
  }

  /**
   * Loads with options `loadOptions` has already read and checked.
   * @internal
   */
  static _start({ native: nativeOptions, onProgress }: ParsedLoadOptions): Promise<Engine> {
    return new Promise((resolve, reject) => {
      let native: NativeEngine
      try {
        const progress = onProgress
          ? (p: number) => {
              try {
                onProgress(p)
              } catch (_) {
                // A throwing progress callback must not break the load.
              }
            }
          : null
        native = NativeEngine.start(nativeOptions, progress, (event) => {
          if (event.kind === 'failed') {
            reject(fromFailure(event.error))
            // Frees the thread that reported the failure.
            native.shutdown(() => {})
          } else {
            resolve(new Engine(native, event.info, nativeOptions.defaultTimeoutMs))
          }
        })
      } catch (err) {
        reject(toError(err))
      }
    })
  }

  private _submit(
    input: unknown,
    options: binding.GenerateOptions,
    stream: boolean,
    onEvent: (event: binding.NativeEvent) => void,
  ): binding.NativeRequest {
    this._ensureLive()
    return this._native.submit(nativeInput(input), options, stream, onEvent)
  }

  private _ensureLive(): void {
    if (this._stopping) throw new LlamaError(ErrorCode.MODEL_NOT_LOADED, 'the engine was shut down: load a model again')
  }

  generate(input: Input, options?: GenerateOptions): Promise<Generation> {
    return this._untilFinal(
      () => {
        const parsed = generateOptions(options)
        return { ...parsed, submit: (onEvent) => this._submit(input, parsed.native, false, onEvent) }
      },
      (event) => (event.kind === 'done' ? toGeneration(event.generation) : undefined),
    )
  }

  /**
   * One request whose result comes with its final event (generate, embed, rank): a Promise
   * that settles once, with the engine's answer, the caller's abort, or the JS-side deadline.
   * `start` reads the options and submits; anything it throws rejects the Promise.
   */
  private _untilFinal<T>(
    start: () => ParsedRequestOptions<unknown> & { submit: (onEvent: (event: binding.NativeEvent) => void) => binding.NativeRequest },
    result: (event: binding.NativeEvent) => T | undefined,
  ): Promise<T> {
    return new Promise((resolve, reject) => {
      let settled = false
      let request: binding.NativeRequest | null = null
      let unwatch: (() => void) | null = null
      const settle = (err: LlamaError | null, value?: T) => {
        if (settled) return
        settled = true
        if (unwatch) unwatch()
        if (err) reject(err)
        else resolve(value as T)
      }
      const onAbort = () => {
        if (request) request.cancel('abort')
        settle(abortedError())
      }
      try {
        const { signal, timeoutMs: own, submit } = start()
        if (signal && signal.aborted) throw abortedError()
        const timeoutMs = own !== null ? own : this._defaultTimeoutMs
        const submitted = submit((event) => {
          if (event.kind === 'error') return settle(fromFailure(event.error))
          const value = result(event)
          if (value !== undefined) settle(null, value)
        })
        request = submitted
        try {
          unwatch = watchRequest(signal, timeoutMs, onAbort, () => {
            submitted.cancel('timeout')
            settle(timeoutError(timeoutMs as number))
          })
        } catch (err) {
          submitted.cancel('abort')
          throw err
        }
        // The engine may have answered already (an early error): nothing left to watch.
        if (settled) unwatch()
      } catch (err) {
        settle(toError(err))
      }
    })
  }

  /** Breaking out of `for await` (or `stream.cancel()`) stops generation within one decode step. */
  stream(input: Input, options?: GenerateOptions): ReadableStream<StreamChunk> {
    let request: binding.NativeRequest | null = null
    let unwatch: (() => void) | null = null
    let finished = false
    const cleanup = () => {
      finished = true
      if (unwatch) unwatch()
    }
    let controllerRef: ReadableStreamDefaultController<StreamChunk> | null = null
    const onAbort = () => {
      if (request) request.cancel('abort')
      if (!finished && controllerRef) {
        cleanup()
        controllerRef.error(abortedError())
      }
    }
    const start = (controller: ReadableStreamDefaultController<StreamChunk>) => {
      controllerRef = controller
      try {
        const parsed = generateOptions(options)
        const signal = parsed.signal
        if (signal && signal.aborted) throw abortedError()
        const timeoutMs = parsed.timeoutMs !== null ? parsed.timeoutMs : this._defaultTimeoutMs
        let tokensSent = 0
        const submitted = this._submit(input, parsed.native, true, (event) => {
          if (finished) return
          if (event.kind === 'chunk') {
            tokensSent += event.tokens
            controller.enqueue({ type: 'text', text: event.text, tokens: event.tokens, done: false })
          } else if (event.kind === 'delta') {
            tokensSent += event.delta.tokens
            for (const chunk of deltaChunks(event.delta)) controller.enqueue(chunk)
          } else if (event.kind === 'done') {
            cleanup()
            const generation = toGeneration(event.generation)
            const { text, ...fields } = generation
            // Tokens that produced no text (an end marker, a cut-off character) count here.
            const tokens = Math.max(0, generation.completionTokens - tokensSent)
            controller.enqueue({ type: 'done', text: '', tokens, done: true, ...fields, generation })
            controller.close()
          } else if (event.kind === 'error') {
            cleanup()
            controller.error(fromFailure(event.error))
          }
        })
        request = submitted
        try {
          unwatch = watchRequest(signal, timeoutMs, onAbort, () => {
            submitted.cancel('timeout')
            if (!finished) {
              cleanup()
              controller.error(timeoutError(timeoutMs as number))
            }
          })
        } catch (err) {
          submitted.cancel('abort')
          throw err
        }
        if (finished) unwatch()
      } catch (err) {
        cleanup()
        controller.error(toError(err))
      }
    }
    // Node's global ReadableStream: the type import above is types only.
    return new globalThis.ReadableStream<StreamChunk>(
      {
        start,
        cancel() {
          // `break` in for await…of, or stream.cancel(): stop generating at the next step.
          cleanup()
          if (request) request.cancel('abort')
        },
      },
      // Chunks are never held back for a slow reader: the engine does not wait for one.
      { highWaterMark: Number.MAX_SAFE_INTEGER },
    )
  }

  /**
   * One vector per text, in input order, from an engine loaded with `embeddings: true`, and
   * `promptTokens`, the tokens evaluated. Texts of concurrent calls share decodes: as many whole
   * texts as fit `max(batchSize, contextSize)` tokens and `parallel` sequences go into one. Normalized to length 1 unless `normalize: false`.
   * A text longer than `contextSize` tokens rejects `CONTEXT_OVERFLOW` naming its index.
   */
  embed(texts: string[], options?: EmbedOptions): Promise<Embeddings> {
    return this._embedding(options, (onEvent, native) => this._native.embed(readTexts(texts), native, onEvent))
  }

  /**
   * A reranker's relevance score of each document for `query`, in input order (higher is more
   * relevant; raw model scores, not probabilities), and `promptTokens`, the tokens evaluated.
   * Needs a reranker GGUF (pooling 'rank').
   */
  async rank(query: string, documents: string[], options?: EmbedOptions): Promise<Scores> {
    const vectors = await this._embedding(options, (onEvent, native) => {
      if (typeof query !== 'string') throw invalid('query must be a string')
      return this._native.rank(query, readDocuments(documents), native, onEvent)
    })
    return Object.assign(
      vectors.map((v) => v[0]),
      { promptTokens: vectors.promptTokens },
    )
  }

  private _embedding(
    options: EmbedOptions | undefined,
    submit: (onEvent: (event: binding.NativeEvent) => void, native: binding.EmbedOptions) => binding.NativeRequest,
  ): Promise<Embeddings> {
    return this._untilFinal(
      () => {
        this._ensureLive()
        const parsed = embedOptions(options)
        return { ...parsed, submit: (onEvent) => submit(onEvent, parsed.native) }
      },
      (event) => {
        if (event.kind !== 'embedded') return undefined
        // Views in this realm (Jest runs tests in their own realm; instanceof must hold there).
        const vectors = event.vectors.map((v) => new Float32Array(v.buffer, v.byteOffset, v.length))
        return Object.assign(vectors, { promptTokens: event.promptTokens })
      },
    )
  }

  /** Token ids of `text` (no BOS; special-token text stays text). */
  tokenize(text: string): Uint32Array {
    if (typeof text !== 'string') throw invalid('tokenize expects a string')
    try {
      const ids = this._native.tokenize(text)
      // A view in this realm (Jest runs tests in their own realm; instanceof must hold there).
      return new Uint32Array(ids.buffer, ids.byteOffset, ids.length)
    } catch (err) {
      throw toError(err)
    }
  }

  /** Text of token ids; `detokenize(tokenize(s)) === s` for any well-formed string. */
  detokenize(tokens: Uint32Array | number[]): string {
    const given: unknown = tokens
    if (
      !Array.isArray(given) &&
      !(ArrayBuffer.isView(given) && Object.prototype.toString.call(given) === '[object Uint32Array]')
    ) {
      throw invalid('detokenize expects a Uint32Array or an array of token ids')
    }
    if (Array.isArray(given) && given.some((t) => !Number.isInteger(t) || t < 0 || t > 0xffffffff)) {
      throw invalid('token ids must be non-negative integers')
    }
    try {
      return this._native.detokenize(Array.from(tokens))
    } catch (err) {
      throw toError(err)
    }
  }

  /** Prompt tokens an input costs (chat input is rendered with the template first). */
  countTokens(input: Input): number {
    try {
      return this._native.countTokens(nativeInput(input))
    } catch (err) {
      throw toError(err)
    }
  }

  /** Never throws. */
  health(): Health {
    try {
      const h = this._native.health()
      // napi leaves out None fields; the contract has them as null.
      const out: Health = { ...h, modelName: h.modelName ?? null, lastError: h.lastError ?? null }
      if (out.status === 'unloaded') Object.assign(out, { slotsBusy: 0, slotsTotal: 0, queueDepth: 0 })
      return out
    } catch (err) {
      return {
        status: 'error',
        modelName: null,
        contextSize: 0,
        uptimeMs: 0,
        lastError: String(err && (err as { message?: unknown }).message),
        slotsBusy: 0,
        slotsTotal: 0,
        queueDepth: 0,
      }
    }
  }

  metrics(): Metrics {
    return this._native.metrics()
  }

  /** Cancels in-flight work (it rejects with ABORTED) and frees the model. Safe to call twice. */
  unload(): Promise<void> {
    if (!this._stopping) {
      this._stopping = new Promise((resolve) => this._native.shutdown(() => resolve()))
    }
    return this._stopping
  }
}
