// Reading what callers pass: options and inputs are read once into plain copies and checked
// before anything reaches the engine. The known option names come from one table per kind of
// options, compile-checked against the generated types.
import type * as binding from '../binding'
import { LlamaError, invalid, reasonOf } from './errors'
import { SERVER_KINDS } from './remote/server-kinds'
import type { ServerKind } from './remote/server-kinds'

export type LogLevel = binding.LogLevel
export type OverflowPolicy = binding.OverflowPolicy

export type Pooling = binding.Pooling

export interface InitializeOptions extends Omit<binding.NativeLoadOptions, '__faults' | 'logLevel' | 'pooling'> {
  /** 'off' | 'error' | 'warn' (default) | 'info' | 'debug' | 'trace'. llama.cpp's own logs appear at 'debug' and 'trace'. Env: NAPI_LLAMA_LOG. */
  logLevel?: LogLevel
  /**
   * An embedding engine's pooling: 'mean' | 'cls' | 'last' | 'rank' (a reranker). Default: the
   * model's own (GGUF `<arch>.pooling_type`), else 'mean'. Needs `embeddings: true`.
   */
  pooling?: Pooling
  /** Load progress in [0, 1]. */
  onProgress?: (fraction: number) => void
  /**
   * `initialize` only: replace a loaded model instead of failing with `ALREADY_INITIALIZED`.
   * The options are checked first: bad ones reject `INVALID_ARGUMENT` and the loaded model
   * stays. A file that then fails to load leaves no model loaded.
   */
  replace?: boolean
}

/** A function the model may call. */
export interface ToolDefinition {
  /** 1 to 64 letters, digits, `_` or `-`. */
  name: string
  description?: string
  /** JSON Schema of the arguments: an object schema (`type: 'object'`). Default: no arguments. */
  parameters?: object
}

/** Whether the model calls tools: it decides ('auto'), never ('none'), always ('required'), or calls the named one. */
export type ToolChoice = 'auto' | 'none' | 'required' | { name: string }

export interface ChatMessage extends Omit<binding.ChatMessage, 'toolCalls'> {
  role: 'system' | 'user' | 'assistant' | 'tool'
  /** The calls an assistant message made; `arguments` as JSON text or as an object. */
  toolCalls?: Array<Omit<binding.ToolCall, 'arguments'> & { arguments: string | object }>
}

export type Input = string | ChatMessage[]

export interface GenerateOptions
  extends Omit<binding.GenerateOptions, 'stop' | 'jsonSchema' | 'contextOverflow' | 'tools' | 'toolChoice' | 'reasoning'> {
  /** Generation ends before any of these strings; they never appear in the output. */
  stop?: string | string[]
  /** JSON Schema (object or JSON text) the output must match; converted to a grammar. */
  jsonSchema?: object | string
  /**
   * When the prompt does not fit the context: 'error' (default) rejects with `CONTEXT_OVERFLOW`;
   * 'drop-oldest' (chat input only) drops the oldest non-system turns until the prompt plus
   * min(maxTokens, contextSize / 4) tokens of reply fit, and reports `droppedMessages`.
   */
  contextOverflow?: OverflowPolicy
  /**
   * Functions the model may call (chat input only). The model's own template renders them, and
   * llama.cpp's chat formats read its calls into `Generation.toolCalls`.
   */
  tools?: ToolDefinition[]
  /** Default 'auto'. 'required' and a named tool constrain sampling, so the call always parses and matches its schema. */
  toolChoice?: ToolChoice
  /**
   * A thinking model's reasoning: 'separate' (default: `Generation.reasoningText` and
   * reasoning chunks), 'inline' (left in the text, tags and all) or 'off' (the template is
   * asked not to think).
   */
  reasoning?: binding.ReasoningMode
  /** Reject with `ABORTED` when this signal aborts. */
  signal?: AbortSignal
}

/**
 * How an option's value is checked: 'number', 'string' and 'boolean' by the shared loop below,
 * the others by code of their own. An 'unchecked' value is never refused for its type: the code
 * that reads it ignores values of other types (`replace` counts only when it is `true`).
 */
type Kind = 'number' | 'string' | 'boolean' | 'strings' | 'schema' | 'signal' | 'function' | 'unchecked'

// The kinds an option of type T may be given, so a table entry cannot contradict its type.
type KindOf<T> = [T] extends [number]
  ? 'number'
  : [T] extends [boolean]
    ? 'boolean' | 'unchecked'
    : [T] extends [string]
      ? 'string' | 'unchecked'
      : [T] extends [AbortSignal]
        ? 'signal'
        : [T] extends [(...args: never[]) => unknown]
          ? 'function'
          : [T] extends [string | readonly string[]]
            ? 'strings'
            : 'schema'

// Every key of T, no more: a key added on the Rust side, or one removed, fails the build.
type KindTable<T> = { readonly [K in keyof T]-?: KindOf<NonNullable<T[K]>> }

type KindMap = Readonly<Record<string, Kind>>

/** The load options `initialize` and `Engine.load` accept: the public ones and the test-only `__faults`. */
type AcceptedLoadOptions = InitializeOptions & Pick<binding.NativeLoadOptions, '__faults'>

const LOAD_OPTION_KINDS = {
  modelPath: 'string',
  contextSize: 'number',
  batchSize: 'number',
  threads: 'number',
  threadPoll: 'number',
  gpuLayers: 'number',
  parallel: 'number',
  maxQueue: 'number',
  useMmap: 'boolean',
  chatTemplate: 'string',
  defaultTimeoutMs: 'number',
  promptChunkSize: 'number',
  promptCacheBytes: 'number',
  promptCacheDir: 'string',
  promptCacheDiskBytes: 'number',
  embeddings: 'boolean',
  pooling: 'string',
  logLevel: 'string',
  responsiveEventLoop: 'boolean',
  onProgress: 'function',
  // Read by initialize (only `true` replaces); Engine.load has nothing to replace and ignores it.
  replace: 'unchecked',
  // Test-only fault injection (src/engine/faults.rs); a non-string is ignored.
  __faults: 'unchecked',
} as const satisfies KindTable<AcceptedLoadOptions>

const GENERATE_OPTION_KINDS = {
  maxTokens: 'number',
  temperature: 'number',
  topK: 'number',
  topP: 'number',
  minP: 'number',
  repeatPenalty: 'number',
  frequencyPenalty: 'number',
  presencePenalty: 'number',
  seed: 'number',
  stop: 'strings',
  timeoutMs: 'number',
  grammar: 'string',
  jsonSchema: 'schema',
  requestId: 'string',
  cachePrompt: 'boolean',
  contextOverflow: 'string',
  parseSpecialTokens: 'boolean',
  tools: 'schema',
  toolChoice: 'schema',
  parallelToolCalls: 'boolean',
  reasoning: 'string',
  reasoningBudget: 'number',
  streamIntervalMs: 'number',
  signal: 'signal',
} as const satisfies KindTable<GenerateOptions>

/** The value a checked option of kind K holds; null, like undefined, means "not set". */
type ValueOf<K> = K extends 'number' ? number : K extends 'string' ? string : K extends 'boolean' ? boolean : unknown
type Read<T extends KindMap> = { [K in keyof T]?: unknown }
type Checked<T extends KindMap> = { [K in keyof T]?: ValueOf<T[K]> | null }

/**
 * Reads the caller's values through `read`: a getter or proxy of theirs that throws is their
 * mistake (INVALID_ARGUMENT), not the engine's (INTERNAL).
 */
function readingCallerValues<A, R>(what: string, read: (value: A) => R): (value: A) => R {
  return (value) => {
    try {
      return read(value)
    } catch (err) {
      if (err instanceof LlamaError) throw err
      throw invalid(`reading ${what} threw (${reasonOf(err)}): pass plain values`)
    }
  }
}

const normalized = (name: string) => name.toLowerCase().replace(/_/g, '')

function levenshtein(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const row = [i]
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1))
    }
    previous = row
  }
  return previous[b.length]
}

/**
 * The known name `key` most likely meant: one that differs only in case or underscores
 * (`max_tokens`), else the nearest within 3 edits. A name is not offered when the edits would
 * replace half of it or more (`foo` is 3 edits from `topK`, but not a misspelling of it).
 */
export function closestName(key: string, known: readonly string[]): string | null {
  // Test-only names stay unmentioned.
  const candidates = known.filter((name) => !name.startsWith('__'))
  const wanted = normalized(key)
  const same = candidates.find((name) => normalized(name) === wanted)
  if (same !== undefined) return same
  let best: string | null = null
  let bestDistance = Infinity
  for (const name of candidates) {
    const distance = levenshtein(wanted, normalized(name))
    if (distance < bestDistance) {
      best = name
      bestDistance = distance
    }
  }
  if (best === null || bestDistance > 3) return null
  return bestDistance * 2 < Math.max(wanted.length, normalized(best).length) ? best : null
}

/**
 * The caller's options as a plain object holding the table's keys, each read once: a getter
 * that answers differently on a second read cannot slip past the checks. Own enumerable keys
 * outside the table are refused, so a misspelled option is not silently ignored; inherited
 * properties do not count (a class instance with methods is fine).
 */
function readOptions<T extends KindMap>(what: string, value: unknown, kinds: T): Read<T> {
  if (value === undefined || value === null) return {}
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid('options must be an object')
  for (const key of Object.keys(value)) {
    if (Object.prototype.hasOwnProperty.call(kinds, key)) continue
    const suggestion = closestName(key, Object.keys(kinds))
    const hint = suggestion === null ? '' : `: did you mean ${JSON.stringify(suggestion)}?`
    throw invalid(`unknown option ${JSON.stringify(key)} in ${what}${hint}`)
  }
  const source = value as Record<string, unknown>
  const copy: Record<string, unknown> = {}
  for (const key of Object.keys(kinds)) copy[key] = source[key]
  return copy as Read<T>
}

/** The type checks the table describes for numbers, strings and booleans. */
function checkKinds<T extends KindMap>(options: Read<T>, kinds: T): asserts options is Checked<T> {
  for (const key of Object.keys(kinds)) {
    const v = (options as Record<string, unknown>)[key]
    if (v === undefined || v === null) continue
    const kind = kinds[key]
    if (kind === 'number' && typeof v !== 'number') throw invalid(`${key} must be a number, got ${typeof v}`)
    if (kind === 'string' && typeof v !== 'string') throw invalid(`${key} must be a string, got ${typeof v}`)
    if (kind === 'boolean' && typeof v !== 'boolean') throw invalid(`${key} must be a boolean`)
  }
}

type PlainKind = 'number' | 'string' | 'boolean'
type PlainValues<T extends KindMap> = { [K in keyof T as T[K] extends PlainKind ? K : never]?: ValueOf<T[K]> }

/**
 * The number, string and boolean options that are set, as the engine takes them: an option
 * added to a table reaches the engine without a second list to keep in step. Unset (undefined
 * or null) options are left out, so the engine's defaults apply.
 */
function plainValues<T extends KindMap>(options: Checked<T>, kinds: T): PlainValues<T> {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(kinds)) {
    const kind = kinds[key]
    if (kind !== 'number' && kind !== 'string' && kind !== 'boolean') continue
    const v = (options as Record<string, unknown>)[key]
    if (v !== undefined && v !== null) out[key] = v
  }
  return out as PlainValues<T>
}

/** Load options read and checked: what the engine gets, and the progress callback. */
export interface ParsedLoadOptions {
  native: binding.NativeLoadOptions
  onProgress: ((fraction: number) => void) | null
}

/** A model path string stands for `{ modelPath }`. */
export const loadOptions = readingCallerValues('the load options', (options: unknown): ParsedLoadOptions => {
  if (typeof options === 'string') options = { modelPath: options }
  const o = readOptions('load options', options, LOAD_OPTION_KINDS)
  const modelPath = o.modelPath
  if (typeof modelPath !== 'string' || modelPath.trim() === '') {
    throw invalid('modelPath is required: the path of a .gguf model file (npm run fetch-model gets test models)')
  }
  checkKinds(o, LOAD_OPTION_KINDS)
  const onProgress = o.onProgress
  if (onProgress !== undefined && onProgress !== null && typeof onProgress !== 'function') {
    throw invalid('onProgress must be a function')
  }
  const native: binding.NativeLoadOptions = { ...plainValues(o, LOAD_OPTION_KINDS), modelPath }
  if (typeof o.__faults === 'string') native.__faults = o.__faults
  return { native, onProgress: (onProgress as ParsedLoadOptions['onProgress'] | undefined) || null }
})

/** A prompt string, or the messages copied field by field. */
export const nativeInput = readingCallerValues('the input', (input: unknown): string | binding.ChatMessage[] => {
  if (typeof input === 'string') {
    if (input.length === 0) throw invalid('the prompt is empty')
    return input
  }
  if (!Array.isArray(input)) throw invalid('input must be a prompt string or an array of { role, content } messages')
  if (input.length === 0) throw invalid('messages is empty: pass at least one message')
  // An index loop, not map(): map skips the holes of a sparse array.
  const messages: binding.ChatMessage[] = new Array(input.length)
  for (let i = 0; i < input.length; i++) {
    const m: unknown = input[i]
    if (!m || typeof m !== 'object') throw invalid(`messages[${i}] must be an object { role, content }`)
    const { role, content, toolCalls, toolCallId } = m as { role?: unknown; content?: unknown; toolCalls?: unknown; toolCallId?: unknown }
    if (typeof role !== 'string') throw invalid(`messages[${i}].role must be a string`)
    if (typeof content !== 'string') throw invalid(`messages[${i}].content must be a string`)
    const message: binding.ChatMessage = { role, content }
    if (toolCalls !== undefined && toolCalls !== null) message.toolCalls = nativeToolCalls(toolCalls, `messages[${i}].toolCalls`)
    if (toolCallId !== undefined && toolCallId !== null) {
      if (typeof toolCallId !== 'string') throw invalid(`messages[${i}].toolCallId must be a string`)
      message.toolCallId = toolCallId
    }
    messages[i] = message
  }
  return messages
})

/** An assistant message's calls, copied field by field; object arguments become JSON text. */
function nativeToolCalls(value: unknown, where: string): binding.ToolCall[] {
  if (!Array.isArray(value)) throw invalid(`${where} must be an array of { id, name, arguments }`)
  const calls: binding.ToolCall[] = new Array(value.length)
  for (let j = 0; j < value.length; j++) {
    const c: unknown = value[j]
    if (!c || typeof c !== 'object') throw invalid(`${where}[${j}] must be an object { id, name, arguments }`)
    const { id, name, arguments: args } = c as { id?: unknown; name?: unknown; arguments?: unknown }
    if (typeof id !== 'string') throw invalid(`${where}[${j}].id must be a string`)
    if (typeof name !== 'string') throw invalid(`${where}[${j}].name must be a string`)
    let text: string
    if (typeof args === 'string') text = args
    else if (args && typeof args === 'object') text = jsonText(args, `${where}[${j}].arguments`)
    else throw invalid(`${where}[${j}].arguments must be JSON text or an object`)
    calls[j] = { id, name, arguments: text }
  }
  return calls
}

/** JSON text of a caller's object, or INVALID_ARGUMENT naming the option. */
function jsonText(value: unknown, what: string): string {
  try {
    return JSON.stringify(value)
  } catch (err) {
    // A cycle, or nesting deeper than the JS stack.
    throw invalid(`${what} cannot be turned into JSON (${err && (err as { message?: unknown }).message}): pass a plain, acyclic object`)
  }
}

/** A request's options read and checked: what the engine gets, and what the JS side watches. */
export interface ParsedRequestOptions<Native> {
  native: Native
  signal: AbortSignal | null
  /** The caller's timeout when it is one the engine enforces, else null. */
  timeoutMs: number | null
}

export type ParsedGenerateOptions = ParsedRequestOptions<binding.GenerateOptions>

export const generateOptions = readingCallerValues('the options', (options: unknown): ParsedGenerateOptions => {
  const o = readOptions('generate options', options, GENERATE_OPTION_KINDS)
  checkKinds(o, GENERATE_OPTION_KINDS)
  let stop = o.stop
  if (typeof stop === 'string') stop = [stop]
  if (stop !== undefined && stop !== null) {
    if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string')) throw invalid('stop must be an array of strings')
  }
  let jsonSchema = o.jsonSchema
  if (jsonSchema !== undefined && jsonSchema !== null && typeof jsonSchema !== 'string') {
    if (typeof jsonSchema !== 'object') throw invalid('jsonSchema must be an object or a JSON string')
    jsonSchema = jsonText(jsonSchema, 'jsonSchema')
  }
  const tools = o.tools
  if (tools !== undefined && tools !== null && !Array.isArray(tools)) throw invalid('tools must be an array of { name, description?, parameters? }')
  const toolChoice = o.toolChoice
  if (toolChoice !== undefined && toolChoice !== null && typeof toolChoice !== 'string' && typeof toolChoice !== 'object') {
    throw invalid("toolChoice must be 'auto', 'none', 'required' or { name }")
  }
  const signal = checkedSignal(o.signal)
  const native: binding.GenerateOptions = plainValues(o, GENERATE_OPTION_KINDS)
  if (stop !== undefined && stop !== null) native.stop = stop as string[]
  if (jsonSchema !== undefined && jsonSchema !== null) native.jsonSchema = jsonSchema as string
  // Tools cross as JSON text: the engine checks them, field by field, in one place.
  if (tools !== undefined && tools !== null) native.tools = jsonText(tools, 'tools')
  if (toolChoice !== undefined && toolChoice !== null) native.toolChoice = jsonText(toolChoice, 'toolChoice')
  return { native, signal, timeoutMs: enforcedTimeout(o.timeoutMs) }
})

function checkedSignal(value: unknown): AbortSignal | null {
  if (value === undefined || value === null) return null
  const signal = value as AbortSignal
  if (
    typeof signal !== 'object' ||
    typeof signal.aborted !== 'boolean' ||
    typeof signal.addEventListener !== 'function' ||
    typeof signal.removeEventListener !== 'function'
  ) {
    throw invalid('signal must be an AbortSignal')
  }
  return signal
}

/** The caller's timeout when it is one the engine enforces (it refuses the others), else null. */
function enforcedTimeout(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 1 ? value : null
}

export interface EmbedOptions extends binding.EmbedOptions {
  /** Reject with `ABORTED` when this signal aborts. */
  signal?: AbortSignal
}

const EMBED_OPTION_KINDS = {
  normalize: 'boolean',
  timeoutMs: 'number',
  requestId: 'string',
  signal: 'signal',
} as const satisfies KindTable<EmbedOptions>

export type ParsedEmbedOptions = ParsedRequestOptions<binding.EmbedOptions>

export const embedOptions = readingCallerValues('the options', (options: unknown): ParsedEmbedOptions => {
  const o = readOptions('embed options', options, EMBED_OPTION_KINDS)
  checkKinds(o, EMBED_OPTION_KINDS)
  return { native: plainValues(o, EMBED_OPTION_KINDS), signal: checkedSignal(o.signal), timeoutMs: enforcedTimeout(o.timeoutMs) }
})

/** A list of texts copied element by element; `what` names the argument in errors. */
export const textList = (what: string) =>
  readingCallerValues(`the ${what}`, (value: unknown): string[] => {
    if (!Array.isArray(value)) throw invalid(`${what} must be an array of strings`)
    if (value.length === 0) throw invalid(`${what} is empty: pass at least one string`)
    const texts: string[] = new Array(value.length)
    for (let i = 0; i < value.length; i++) {
      const text: unknown = value[i]
      if (typeof text !== 'string') throw invalid(`${what}[${i}] must be a string, got ${typeof text}`)
      texts[i] = text
    }
    return texts
  })

/** How `Engine.connect` reaches an OpenAI-compatible server (llama-server, vLLM, …). */
export interface ConnectOptions {
  /** The server's URL, e.g. `http://10.0.0.5:8080` (a trailing `/v1` is accepted). */
  baseURL: string
  /** Sent as `Authorization: Bearer …`; never appears in errors, logs or `health()`. */
  apiKey?: string
  /** The model id sent with every request. Default: the first one `/v1/models` lists. */
  model?: string
  /** Default deadline of every request, in milliseconds (a request's own `timeoutMs` wins). */
  timeoutMs?: number
  /** How long opening a connection may take before `UNAVAILABLE`. Default 2000. */
  connectTimeoutMs?: number
  /** Extra headers sent with every request. */
  headers?: Record<string, string>
  /** 'llama-server' | 'vllm' | 'openai'. Default: detected from `/v1/models`. */
  kind?: ServerKind
  /** How health(), metrics() and errors name this backend. Default: its URL without credentials. */
  name?: string
  /**
   * Requests the server runs at once, when it does not say (llama-server reports its slots):
   * a pool sends no more than this at a time. Default 16.
   */
  maxConcurrency?: number
}

const CONNECT_OPTION_KINDS = {
  baseURL: 'string',
  apiKey: 'string',
  model: 'string',
  timeoutMs: 'number',
  connectTimeoutMs: 'number',
  headers: 'schema',
  kind: 'string',
  name: 'string',
  maxConcurrency: 'number',
} as const satisfies KindTable<ConnectOptions>

/** Connect options read and checked, with their defaults. */
export interface ParsedConnectOptions {
  /** The server's origin (scheme, host, port) and path prefix, without `/v1` or credentials. */
  origin: string
  pathPrefix: string
  name: string
  apiKey: string | null
  model: string | null
  timeoutMs: number | null
  connectTimeoutMs: number
  headers: Record<string, string>
  kind: ServerKind | null
  maxConcurrency: number
}

function positiveInteger(name: string, value: number | null | undefined, fallback: number, max = 2 ** 31 - 1): number {
  if (value === undefined || value === null) return fallback
  if (!Number.isInteger(value) || value < 1 || value > max) throw invalid(`${name} must be an integer from 1 to ${max}, got ${value}`)
  return value
}

export const connectOptions = readingCallerValues('the connect options', (options: unknown): ParsedConnectOptions => {
  if (typeof options === 'string') options = { baseURL: options }
  const o = readOptions('connect options', options, CONNECT_OPTION_KINDS)
  checkKinds(o, CONNECT_OPTION_KINDS)
  if (typeof o.baseURL !== 'string' || o.baseURL.trim() === '') {
    throw invalid('baseURL is required: the URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080')
  }
  let url: URL
  try {
    url = new URL(o.baseURL.trim())
  } catch {
    // Never echo credentials a malformed URL may carry.
    const shown = o.baseURL.replace(/\/\/[^@/]*@/, '//…@')
    throw invalid(`baseURL ${JSON.stringify(shown)} is not a URL: pass e.g. http://127.0.0.1:8080`)
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`baseURL must be http:// or https://, got ${url.protocol}`)
  let apiKey = typeof o.apiKey === 'string' && o.apiKey !== '' ? o.apiKey : null
  // Credentials in the URL become the key; they never reach the backend's name.
  if (!apiKey && url.password) apiKey = decodeURIComponent(url.password)
  url.username = ''
  url.password = ''
  let pathPrefix = url.pathname.replace(/\/+$/, '')
  if (pathPrefix.endsWith('/v1')) pathPrefix = pathPrefix.slice(0, -3)
  const kind = o.kind
  if (kind !== undefined && kind !== null && !SERVER_KINDS.includes(kind as ServerKind)) {
    throw invalid(`kind must be one of ${SERVER_KINDS.map((k) => `'${k}'`).join(', ')}, got ${JSON.stringify(kind)}`)
  }
  const headers: Record<string, string> = {}
  if (o.headers !== undefined && o.headers !== null) {
    if (typeof o.headers !== 'object' || Array.isArray(o.headers)) throw invalid('headers must be an object of header names to strings')
    for (const [key, value] of Object.entries(o.headers as Record<string, unknown>)) {
      if (typeof value !== 'string') throw invalid(`headers[${JSON.stringify(key)}] must be a string`)
      headers[key.toLowerCase()] = value
    }
  }
  const timeoutMs = o.timeoutMs === undefined || o.timeoutMs === null ? null : positiveInteger('timeoutMs', o.timeoutMs, 0)
  return {
    origin: url.origin,
    pathPrefix,
    name: typeof o.name === 'string' && o.name !== '' ? o.name : `${url.origin}${pathPrefix}`,
    apiKey,
    model: typeof o.model === 'string' && o.model !== '' ? o.model : null,
    timeoutMs,
    connectTimeoutMs: positiveInteger('connectTimeoutMs', o.connectTimeoutMs, 2000),
    headers,
    kind: (kind as ServerKind | undefined) ?? null,
    maxConcurrency: positiveInteger('maxConcurrency', o.maxConcurrency, 16, 65536),
  }
})

/** How `Engine.pool` routes, probes and retries. */
export interface PoolOptions {
  /** How often each backend's readiness is probed (llama-server `/health`, else `/v1/models`). Default 1000 ms. */
  probeIntervalMs?: number
  /** A probe that takes longer fails. Default 2000 ms. */
  probeTimeoutMs?: number
  /** Consecutive failures (probes or requests) that take a backend out. Default 2. */
  failureThreshold?: number
  /** How long a backend stays out before a probe may let it back in. Default 5000 ms. */
  cooldownMs?: number
  /** Attempts after the first, only while nothing was delivered. Default 3. */
  maxRetries?: number
  /** First retry delay when no other backend can take the request; doubles, with jitter. Default 100 ms. */
  retryBaseDelayMs?: number
  /** Longest retry delay (a server's Retry-After may ask for more, within the deadline). Default 2000 ms. */
  retryMaxDelayMs?: number
  /** Send a conversation's later turns to the backend that served it. Default true. */
  affinity?: boolean
  /** Requests the pool holds while every backend is full, before `QUEUE_FULL`. Default 1024. */
  maxQueue?: number
  /** Default deadline of every request, retries included (a request's own `timeoutMs` wins). */
  timeoutMs?: number
}

const POOL_OPTION_KINDS = {
  probeIntervalMs: 'number',
  probeTimeoutMs: 'number',
  failureThreshold: 'number',
  cooldownMs: 'number',
  maxRetries: 'number',
  retryBaseDelayMs: 'number',
  retryMaxDelayMs: 'number',
  affinity: 'boolean',
  maxQueue: 'number',
  timeoutMs: 'number',
} as const satisfies KindTable<PoolOptions>

export interface ParsedPoolOptions {
  probeIntervalMs: number
  probeTimeoutMs: number
  failureThreshold: number
  cooldownMs: number
  maxRetries: number
  retryBaseDelayMs: number
  retryMaxDelayMs: number
  affinity: boolean
  maxQueue: number
  timeoutMs: number | null
}

export const poolOptions = readingCallerValues('the pool options', (options: unknown): ParsedPoolOptions => {
  const o = readOptions('pool options', options, POOL_OPTION_KINDS)
  checkKinds(o, POOL_OPTION_KINDS)
  const nonNegative = (name: string, value: number | null | undefined, fallback: number) => {
    if (value === undefined || value === null) return fallback
    if (!Number.isInteger(value) || value < 0 || value > 2 ** 31 - 1) throw invalid(`${name} must be a non-negative integer, got ${value}`)
    return value
  }
  return {
    probeIntervalMs: positiveInteger('probeIntervalMs', o.probeIntervalMs, 1000),
    probeTimeoutMs: positiveInteger('probeTimeoutMs', o.probeTimeoutMs, 2000),
    failureThreshold: positiveInteger('failureThreshold', o.failureThreshold, 2),
    cooldownMs: nonNegative('cooldownMs', o.cooldownMs, 5000),
    maxRetries: nonNegative('maxRetries', o.maxRetries, 3),
    retryBaseDelayMs: nonNegative('retryBaseDelayMs', o.retryBaseDelayMs, 100),
    retryMaxDelayMs: nonNegative('retryMaxDelayMs', o.retryMaxDelayMs, 2000),
    affinity: o.affinity ?? true,
    maxQueue: nonNegative('maxQueue', o.maxQueue, 1024),
    timeoutMs: o.timeoutMs === undefined || o.timeoutMs === null ? null : positiveInteger('timeoutMs', o.timeoutMs, 0),
  }
})
