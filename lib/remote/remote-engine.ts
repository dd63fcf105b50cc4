// A remote engine: the Engine surface (generate, stream, tokenize, health, metrics, unload)
// over an OpenAI-compatible server such as llama-server or vLLM. Options are read and checked
// by the same code as a local engine's; what differs between servers is in server-kinds.ts.
import { randomUUID } from 'node:crypto'
import type { ReadableStream } from 'node:stream/web'
import { createParser } from 'eventsource-parser'
import type { EventSourceMessage } from 'eventsource-parser'
import { NativeEngine } from '../../binding'
import { ClientMetrics } from '../client-metrics'
import type * as binding from '../../binding'
import { ErrorCode, LlamaError, invalid, toError } from '../errors'
import { connectOptions, generateOptions, nativeInput } from '../options'
import type { ConnectOptions, GenerateOptions, Input, ParsedConnectOptions } from '../options'
import type { Health, StreamChunk } from '../engine'
import { ChunkQueue } from '../chunk-queue'
import { TextPacer } from '../text-pacer'
import { HttpClient, abortError, readText } from './http'
import type { HttpReply } from './http'
import { choiceText, emptyReport, malformed, noteReport, replyError, toGeneration } from './replies'
import type { ClientClock, CompletionReport } from './replies'
import { completionBody, detectKind, traitsOf } from './server-kinds'
import type { ServerKind } from './server-kinds'

type Generation = binding.Generation
type Metrics = binding.Metrics
type ModelInfo = binding.ModelInfo

/** health() of a remote engine: the engine's fields, and which server it talks to. */
export interface RemoteHealth extends Health {
  /** The server's URL, without credentials. */
  backend: string
  kind: ServerKind | null
  /** Requests this engine has in flight. */
  inFlight: number
}

interface Attempt {
  controller: AbortController
  clock: ClientClock
  requestId: string
  stopsRequested: boolean
  finish: () => void
}

export class RemoteEngine {
  /** What the server said about its model; fields it does not report are 0 or ''. */
  info: ModelInfo
  readonly backend: string
  private readonly http: HttpClient
  private readonly options: ParsedConnectOptions
  private kind: ServerKind | null
  private model: string | null
  private status: binding.HealthStatus = 'loading'
  private lastError: string | null = null
  private readonly startedAt = Date.now()
  private readonly inFlight = new Set<AbortController>()
  private unloading: Promise<void> | null = null
  private slotsBusy = 0
  private slotsTotal: number
  private readonly stats = new ClientMetrics()

  private constructor(options: ParsedConnectOptions) {
    this.options = options
    this.backend = options.name
    this.kind = options.kind
    this.model = options.model
    this.slotsTotal = options.maxConcurrency
    this.http = new HttpClient({
      origin: options.origin,
      name: options.name,
      apiKey: options.apiKey,
      headers: options.headers,
      connectTimeoutMs: options.connectTimeoutMs,
    })
    this.info = {
      modelPath: '',
      name: options.model ?? '',
      architecture: '',
      contextSize: 0,
      trainedContextSize: 0,
      vocabSize: 0,
      parameters: 0,
      sizeBytes: 0,
      // The weights and cache live on the remote servers, not in this process.
      memoryBytes: 0,
      chatTemplate: '',
      chatTemplateSource: 'model',
      thinking: false,
      parallel: options.maxConcurrency,
      batchSize: 0,
      threads: 0,
      gpuLayers: 0,
      // The servers' devices are theirs; this process holds none of the model.
      devices: [],
      embeddingSize: 0,
      loadMs: 0,
    }
  }

  /**
   * Reads the options and asks the server what it serves. A server that cannot be reached
   * yet still gives an engine: its health() says `error`, its requests reject `UNAVAILABLE`
   * until the server answers, and a pool probes it back in.
   */
  static async connect(options: ConnectOptions | string): Promise<RemoteEngine> {
    const engine = new RemoteEngine(connectOptions(options))
    await engine.probe()
    return engine
  }

  /** Requests this engine has in flight. */
  get activeRequests(): number {
    return this.inFlight.size
  }

  /** Requests the server runs at once: its slots where it reports them. */
  get capacity(): number {
    return Math.max(1, this.slotsTotal)
  }

  /**
   * Asks the server whether it is ready, learning its kind, model and slots on the way.
   * Never throws: the outcome is in health(). Resolves true when the server is ready.
   */
  async probe(timeoutMs = this.options.connectTimeoutMs * 2): Promise<boolean> {
    if (this.unloading) return false
    const controller = new AbortController()
    const timer = setTimeout(
      () => controller.abort(new LlamaError(ErrorCode.UNAVAILABLE, `backend ${this.backend}: no answer to the readiness probe within ${timeoutMs} ms`)),
      timeoutMs,
    )
    try {
      if (this.kind === null || this.model === null || this.info.contextSize === 0) await this.discover(controller.signal)
      const kind = this.kind ?? 'openai'
      const reply = await this.http.send('GET', this.path(traitsOf(kind).healthPath), undefined, controller.signal)
      const text = await readText(reply.body)
      if (reply.status !== 200) throw replyError(reply, text, this.backend)
      if (traitsOf(kind).slots) await this.readSlots(controller.signal)
      this.status = 'ok'
      return true
    } catch (err) {
      const e = this.http.failure(err, controller.signal)
      this.status = e.code === ErrorCode.MODEL_NOT_LOADED ? 'loading' : 'error'
      this.lastError = e.message
      return false
    } finally {
      clearTimeout(timer)
    }
  }

  private path(p: string): string {
    return `${this.options.pathPrefix}${p}`
  }

  private async getJson(path: string, signal: AbortSignal): Promise<{ status: number; value: unknown; reply: HttpReply; text: string }> {
    const reply = await this.http.send('GET', this.path(path), undefined, signal)
    const text = await readText(reply.body)
    let value: unknown = null
    try {
      value = JSON.parse(text)
    } catch {
      // The caller decides whether a non-JSON body matters.
    }
    return { status: reply.status, value, reply, text }
  }

  /** `/v1/models` (kind, model id, sizes) and llama-server's `/props` (context, slots). */
  private async discover(signal: AbortSignal): Promise<void> {
    const models = await this.getJson('/v1/models', signal)
    if (models.status !== 200) throw replyError(models.reply, models.text, this.backend)
    const data = (models.value as { data?: unknown } | null)?.data
    if (!Array.isArray(data)) throw malformed(this.backend, '/v1/models has no data list')
    if (this.kind === null) this.kind = detectKind(models.value)
    const entries = data as Array<Record<string, unknown>>
    const entry = (this.model !== null ? entries.find((m) => m && m.id === this.model) : entries[0]) ?? null
    if (this.model === null) {
      if (!entry || typeof entry.id !== 'string') throw malformed(this.backend, '/v1/models lists no model')
      this.model = entry.id
    }
    this.info.name = this.model
    const meta = (entry && typeof entry.meta === 'object' && entry.meta) as Record<string, unknown> | null
    if (meta) {
      if (typeof meta.n_ctx_train === 'number') this.info.trainedContextSize = meta.n_ctx_train
      if (typeof meta.n_vocab === 'number') this.info.vocabSize = meta.n_vocab
      if (typeof meta.n_params === 'number') this.info.parameters = meta.n_params
      if (typeof meta.size === 'number') this.info.sizeBytes = meta.size
    }
    if (entry && typeof entry.max_model_len === 'number') this.info.contextSize = entry.max_model_len
    if (this.kind === 'llama-server') {
      const props = await this.getJson('/props', signal)
      const p = props.value as Record<string, unknown> | null
      if (props.status === 200 && p && typeof p === 'object') {
        const settings = p.default_generation_settings as Record<string, unknown> | undefined
        if (settings && typeof settings.n_ctx === 'number') this.info.contextSize = settings.n_ctx
        if (typeof p.total_slots === 'number' && p.total_slots > 0) {
          this.slotsTotal = p.total_slots
          this.info.parallel = p.total_slots
        }
        if (typeof p.model_path === 'string') this.info.modelPath = p.model_path
        if (typeof p.chat_template === 'string' && p.chat_template !== '') this.info.chatTemplate = 'jinja'
      }
    }
    if (this.info.contextSize === 0) this.info.contextSize = this.info.trainedContextSize
  }

  /** llama-server's `/slots`: how many are busy (when the server serves the endpoint). */
  private async readSlots(signal: AbortSignal): Promise<void> {
    const slots = await this.getJson('/slots', signal)
    if (slots.status !== 200 || !Array.isArray(slots.value)) return
    const list = slots.value as Array<Record<string, unknown>>
    this.slotsTotal = list.length
    this.slotsBusy = list.filter((s) => s && (s.is_processing === true || s.state === 1)).length
  }

  /** Reads and checks a request, then starts watching its signal and deadline. */
  private begin(input: Input, options: GenerateOptions | undefined) {
    const messages = nativeInput(input)
    if (this.unloading) throw new LlamaError(ErrorCode.MODEL_NOT_LOADED, `the remote engine for ${this.backend} was unloaded: connect again`)
    const parsed = generateOptions(options)
    // The engine's own checks (ranges, stop strings, grammar, schema): a request a local
    // engine refuses is refused here too, before anything is sent.
    try {
      NativeEngine.checkGenerateOptions(parsed.native)
    } catch (err) {
      throw toError(err)
    }
    if (parsed.signal && parsed.signal.aborted) throw abortError(undefined)
    const timeoutMs = parsed.timeoutMs ?? this.options.timeoutMs
    const controller = new AbortController()
    // A pool that takes a backend out ends its requests with the reason it gives (UNAVAILABLE).
    const onAbort = () => controller.abort(abortError(signal ? signal.reason : undefined))
    const signal = parsed.signal
    if (signal) {
      try {
        signal.addEventListener('abort', onAbort, { once: true })
      } catch (err) {
        throw invalid(`signal.addEventListener threw (${(err as Error)?.message}): pass an AbortSignal`)
      }
    }
    let timer: ReturnType<typeof setTimeout> | null = null
    if (timeoutMs !== null) {
      timer = setTimeout(
        () =>
          controller.abort(
            new LlamaError(ErrorCode.TIMEOUT, `the request did not finish within timeoutMs = ${timeoutMs} (backend ${this.backend}): raise timeoutMs or lower maxTokens`),
          ),
        timeoutMs,
      )
      if (typeof timer.unref === 'function') timer.unref()
    }
    this.inFlight.add(controller)
    this.stats.submitted()
    let finished = false
    const attempt: Attempt = {
      controller,
      clock: { submittedAt: performance.now(), firstTokenAt: null, doneAt: 0 },
      requestId: parsed.native.requestId ?? `req-${randomUUID()}`,
      stopsRequested: (parsed.native.stop?.length ?? 0) > 0,
      finish: () => {
        if (finished) return
        finished = true
        if (timer) clearTimeout(timer)
        if (signal) {
          try {
            signal.removeEventListener('abort', onAbort)
          } catch {
            // The request is over either way.
          }
        }
        this.inFlight.delete(controller)
      },
    }
    return { messages, native: parsed.native, attempt }
  }

  /** Posts a completion; resolves once the server accepted it (status 200). */
  private async post(
    input: string | binding.ChatMessage[],
    native: binding.GenerateOptions,
    stream: boolean,
    attempt: Attempt,
  ): Promise<HttpReply> {
    const kind = this.kind ?? 'openai'
    const body = completionBody(kind, this.model, input, native, stream, this.backend)
    const path = this.path(typeof input === 'string' ? '/v1/completions' : '/v1/chat/completions')
    const reply = await this.http.send('POST', path, body, attempt.controller.signal, { 'x-request-id': attempt.requestId })
    if (reply.status === 200) return reply
    const text = await readText(reply.body, 64 * 1024).catch(() => '')
    throw replyError(reply, text, this.backend)
  }

  /**
   * Posts the request; with contextOverflow 'drop-oldest', a chat the server finds too long
   * loses its oldest non-system turns, one at a time, until it fits.
   */
  private async postFitting(
    input: string | binding.ChatMessage[],
    native: binding.GenerateOptions,
    stream: boolean,
    attempt: Attempt,
  ): Promise<{ reply: HttpReply; dropped: number }> {
    let messages = input
    let dropped = 0
    for (;;) {
      try {
        return { reply: await this.post(messages, native, stream, attempt), dropped }
      } catch (err) {
        const e = this.http.failure(err, attempt.controller.signal)
        if (e.code !== ErrorCode.CONTEXT_OVERFLOW || native.contextOverflow !== 'drop-oldest' || typeof messages === 'string') throw e
        const oldest = messages.findIndex((m, i) => m.role !== 'system' && i < (messages as binding.ChatMessage[]).length - 1)
        if (oldest < 0) throw e
        messages = messages.filter((_, i) => i !== oldest)
        dropped++
      }
    }
  }

  private noteDone(generation: Generation): void {
    this.status = 'ok'
    this.stats.done(generation)
  }

  private noteFailure(err: LlamaError): LlamaError {
    this.stats.failed(err)
    if (err.code === ErrorCode.UNAVAILABLE) {
      this.status = 'error'
      this.lastError = err.message
    } else if (err.code === ErrorCode.MODEL_NOT_LOADED && !this.unloading) {
      this.status = 'loading'
    }
    return err
  }

  generate(input: Input, options?: GenerateOptions): Promise<Generation> {
    let begun: ReturnType<RemoteEngine['begin']>
    try {
      begun = this.begin(input, options)
    } catch (err) {
      return Promise.reject(toError(err))
    }
    const { messages, native, attempt } = begun
    const run = async (): Promise<Generation> => {
      const { reply, dropped } = await this.postFitting(messages, native, false, attempt)
      let text: string
      try {
        text = await readText(reply.body)
      } catch (err) {
        throw this.http.failure(err, attempt.controller.signal, 'while sending the reply')
      }
      let value: unknown
      try {
        value = JSON.parse(text)
      } catch {
        throw malformed(this.backend, `the completion is not JSON: ${text.slice(0, 120)}`)
      }
      if (!value || typeof value !== 'object') throw malformed(this.backend, 'the completion is not a JSON object')
      const content = choiceText(value as Record<string, unknown>)
      if (content === null) throw malformed(this.backend, 'the completion has no choices[0] text')
      const report = emptyReport()
      noteReport(report, value as Record<string, unknown>)
      attempt.clock.doneAt = performance.now()
      return toGeneration(content, report, attempt.clock, attempt.stopsRequested, attempt.requestId, dropped)
    }
    return run().then(
      (generation) => {
        attempt.finish()
        this.noteDone(generation)
        return generation
      },
      (err) => {
        const e = this.http.failure(err, attempt.controller.signal)
        attempt.finish()
        throw this.noteFailure(e)
      },
    )
  }

  /** Breaking out of `for await` (or `stream.cancel()`) aborts the HTTP request: the server frees its slot. */
  stream(input: Input, options?: GenerateOptions): ReadableStream<StreamChunk> {
    let attempt: Attempt | null = null
    let settled = false
    const queue = new ChunkQueue<StreamChunk>(() => {
      if (attempt && !settled) {
        settled = true
        this.stats.failed(abortError(undefined))
        attempt.controller.abort(abortError(undefined))
        attempt.finish()
      }
    })
    let begun: ReturnType<RemoteEngine['begin']>
    try {
      begun = this.begin(input, options)
    } catch (err) {
      settled = true
      queue.fail(toError(err))
      return queue.stream
    }
    const { messages, native } = begun
    attempt = begun.attempt
    const current = begun.attempt
    const fail = (err: unknown) => {
      if (settled) return
      settled = true
      const e = this.http.failure(err, current.controller.signal)
      current.finish()
      queue.fail(this.noteFailure(e))
    }
    // An abort (signal, deadline, unload) ends the stream at once, even while the server is silent.
    current.controller.signal.addEventListener('abort', () => fail(current.controller.signal.reason), { once: true })
    this.pump(messages, native, current, queue, (generation) => {
      if (settled) return false
      settled = true
      current.finish()
      this.noteDone(generation)
      return true
    }).catch(fail)
    return queue.stream
  }

  /** Reads the server's SSE stream into chunks; the last one carries the Generation. */
  private async pump(
    messages: string | binding.ChatMessage[],
    native: binding.GenerateOptions,
    attempt: Attempt,
    queue: ChunkQueue<StreamChunk>,
    onDone: (generation: Generation) => boolean,
  ): Promise<void> {
    const { reply, dropped } = await this.postFitting(messages, native, true, attempt)
    const report: CompletionReport = emptyReport()
    let text = ''
    let tokensSent = 0
    let sawDone = false
    let protocolError: LlamaError | null = null
    const pacer = new TextPacer(native.streamIntervalMs ?? 0, (piece, tokens) => queue.push({ type: 'text', text: piece, tokens, done: false }))
    const onEvent = (event: EventSourceMessage) => {
      if (protocolError || sawDone) return
      if (event.data === '[DONE]') {
        sawDone = true
        return
      }
      let value: Record<string, unknown>
      try {
        value = JSON.parse(event.data)
      } catch {
        protocolError = malformed(this.backend, `an SSE event that is not JSON: ${event.data.slice(0, 120)}`)
        return
      }
      if (!value || typeof value !== 'object') {
        protocolError = malformed(this.backend, 'an SSE event that is not a JSON object')
        return
      }
      if (event.event === 'error' || value.error !== undefined) {
        const inner = (value.error ?? value) as { code?: unknown }
        const status = typeof inner.code === 'number' ? inner.code : 500
        const said = replyError({ status, headers: {} }, JSON.stringify(value), this.backend)
        // After text, the server failed part way through its reply: not the caller's request
        // (nor a busy server to retry), whatever status the event names.
        protocolError = tokensSent === 0 ? said : new LlamaError(ErrorCode.INTERNAL, `backend ${this.backend} failed after ${tokensSent} chunks: ${said.message}`)
        return
      }
      const piece = choiceText(value)
      if (piece === null) {
        protocolError = malformed(this.backend, 'a stream chunk without choices')
        return
      }
      noteReport(report, value)
      if (piece !== '') {
        if (attempt.clock.firstTokenAt === null) attempt.clock.firstTokenAt = performance.now()
        text += piece
        tokensSent++
        pacer.push(piece, 1)
      }
    }
    const parser = createParser({ onEvent })
    const body = reply.body
    body.setEncoding('utf8')
    try {
      for await (const part of body as AsyncIterable<string>) {
        parser.feed(part)
        if (protocolError || sawDone) break
      }
    } catch (err) {
      throw this.http.failure(err, attempt.controller.signal, `cut the stream after ${tokensSent} chunks`)
    } finally {
      if (protocolError || sawDone) body.destroy()
      // The text received goes out before whatever ends the stream (the final chunk or an error).
      pacer.flush()
    }
    if (protocolError) throw protocolError
    if (!sawDone && report.finishReason === null) {
      throw new LlamaError(ErrorCode.UNAVAILABLE, `backend ${this.backend} ended the stream part way, after ${tokensSent} chunks: the reply is incomplete`)
    }
    attempt.clock.doneAt = performance.now()
    if (report.completionTokens === null) report.completionTokens = tokensSent
    const generation = toGeneration(text, report, attempt.clock, attempt.stopsRequested, attempt.requestId, dropped)
    const { text: _full, ...fields } = generation
    const tokens = Math.max(0, generation.completionTokens - tokensSent)
    if (!onDone(generation)) return
    queue.push({ type: 'done', text: '', tokens, done: true, ...fields, generation })
    queue.close()
  }

  private async postJson(path: string, body: unknown, what: string): Promise<Record<string, unknown>> {
    if (this.unloading) throw new LlamaError(ErrorCode.MODEL_NOT_LOADED, `the remote engine for ${this.backend} was unloaded: connect again`)
    const controller = new AbortController()
    const limit = this.options.timeoutMs ?? 30_000
    const timer = setTimeout(() => controller.abort(new LlamaError(ErrorCode.TIMEOUT, `${what} did not finish within ${limit} ms (backend ${this.backend})`)), limit)
    try {
      const reply = await this.http.send('POST', this.path(path), body, controller.signal)
      const text = await readText(reply.body)
      if (reply.status !== 200) throw replyError(reply, text, this.backend)
      try {
        const value = JSON.parse(text)
        if (value && typeof value === 'object') return value as Record<string, unknown>
      } catch {
        // Falls through to the malformed-reply error.
      }
      throw malformed(this.backend, `${path} did not answer a JSON object`)
    } catch (err) {
      throw this.http.failure(err, controller.signal)
    } finally {
      clearTimeout(timer)
    }
  }

  private tokenizer(operation: string): 'llama-server' | 'vllm' {
    const tokenizer = traitsOf(this.kind ?? 'openai').tokenizer
    if (tokenizer === null) {
      throw invalid(`${operation} is not offered by backend ${this.backend} (an OpenAI-compatible server of kind '${this.kind ?? 'openai'}' has no tokenizer endpoint)`)
    }
    return tokenizer
  }

  private static tokenIds(value: Record<string, unknown>, backend: string): Uint32Array {
    const tokens = value.tokens
    if (!Array.isArray(tokens) || tokens.some((t) => typeof t !== 'number')) throw malformed(backend, '/tokenize did not answer a list of token ids')
    return Uint32Array.from(tokens as number[])
  }

  /** Token ids of `text` (no BOS; special-token text stays text), from the server's tokenizer. */
  async tokenize(text: string): Promise<Uint32Array> {
    if (typeof text !== 'string') throw invalid('tokenize expects a string')
    const tokenizer = this.tokenizer('tokenize')
    const body =
      tokenizer === 'llama-server'
        ? { content: text, add_special: false, parse_special: false }
        : { model: this.model, prompt: text, add_special_tokens: false }
    return RemoteEngine.tokenIds(await this.postJson('/tokenize', body, 'tokenize'), this.backend)
  }

  /** Text of token ids, from the server's tokenizer. */
  async detokenize(tokens: Uint32Array | number[]): Promise<string> {
    const given: unknown = tokens
    if (!Array.isArray(given) && !(given instanceof Uint32Array)) throw invalid('detokenize expects a Uint32Array or an array of token ids')
    const ids = Array.from(given as ArrayLike<number>)
    if (ids.some((t) => !Number.isInteger(t) || t < 0 || t > 0xffffffff)) throw invalid('token ids must be non-negative integers')
    const tokenizer = this.tokenizer('detokenize')
    const value = await this.postJson('/detokenize', tokenizer === 'llama-server' ? { tokens: ids } : { model: this.model, tokens: ids }, 'detokenize')
    const text = tokenizer === 'llama-server' ? value.content : value.prompt
    if (typeof text !== 'string') throw malformed(this.backend, '/detokenize did not answer text')
    return text
  }

  /** Prompt tokens an input costs on the server (chat input is rendered with its template first). */
  async countTokens(input: Input): Promise<number> {
    const messages = nativeInput(input)
    const tokenizer = this.tokenizer('countTokens')
    if (tokenizer === 'vllm') {
      const body = typeof messages === 'string' ? { model: this.model, prompt: messages } : { model: this.model, messages }
      const value = await this.postJson('/tokenize', body, 'countTokens')
      return typeof value.count === 'number' ? value.count : RemoteEngine.tokenIds(value, this.backend).length
    }
    let prompt = messages
    if (typeof prompt !== 'string') {
      const rendered = await this.postJson('/apply-template', { messages: prompt }, 'countTokens')
      if (typeof rendered.prompt !== 'string') throw malformed(this.backend, '/apply-template did not answer a prompt')
      prompt = rendered.prompt
    }
    const value = await this.postJson('/tokenize', { content: prompt, add_special: true, parse_special: typeof input !== 'string' }, 'countTokens')
    return RemoteEngine.tokenIds(value, this.backend).length
  }

  /** Never throws; the status is what the last probe or request found. */
  health(): RemoteHealth {
    return {
      status: this.unloading ? 'unloaded' : this.status,
      modelName: this.model,
      contextSize: this.info.contextSize,
      uptimeMs: Date.now() - this.startedAt,
      lastError: this.lastError,
      slotsBusy: this.unloading ? 0 : Math.max(this.slotsBusy, Math.min(this.inFlight.size, this.slotsTotal)),
      slotsTotal: this.unloading ? 0 : this.slotsTotal,
      queueDepth: 0,
      backend: this.backend,
      kind: this.kind,
      inFlight: this.inFlight.size,
    }
  }

  /** Counters measured on this side of the wire, in the local engine's shape. */
  metrics(): Metrics {
    const active = this.inFlight.size
    return this.stats.snapshot({ active, queued: 0, slotsBusy: Math.min(active, this.slotsTotal), slotsTotal: this.slotsTotal })
  }

  /** Aborts requests in flight (they reject with ABORTED) and closes the connections. Safe to call twice. */
  unload(): Promise<void> {
    if (!this.unloading) {
      for (const controller of this.inFlight) {
        controller.abort(new LlamaError(ErrorCode.ABORTED, `the remote engine for ${this.backend} was unloaded`))
      }
      this.unloading = this.http.close()
    }
    return this.unloading
  }
}
