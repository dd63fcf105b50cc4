// Service configuration, read once from the environment (and `.env`, see server.ts). Every value
// is checked here, so a typo in `.env` stops the service at start with a message naming the
// variable instead of surfacing later as a confusing request error.
import net from 'node:net'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import type { Pooling } from 'napi-llama'
import { chatTemplate } from './chat-template'
import { ConfigError } from './config-error'
import { defaultModelPath, modelFileOf } from './model-files'
import { formatBytes, parseBytes } from './multi-model/bytes'
import { type ModelSpec, readModelsFile } from './multi-model/models-file'

export { ConfigError } from './config-error'
export { defaultModelPath } from './model-files'

export interface Config {
  /** GGUF model file. Default: Gemma 3 270M from the addon's fetch script. */
  modelPath: string
  /** True when `LLM_MODEL_PATH` was not set (the default model may be fetched at start). */
  modelPathIsDefault: boolean
  /**
   * `LLM_CHAT_TEMPLATE`: the chat template to load the model with instead of its own, as
   * napi-llama takes it (Jinja source or a family name); unset: the model's own.
   */
  chatTemplate: string | undefined
  /**
   * The models of `LLM_MODELS_FILE`, each served under its name, loaded on first use and
   * unloaded when idle or when memory is needed. Unset: the one model of LLM_MODEL_PATH.
   */
  models: ModelSpec[] | undefined
  /**
   * Memory the models of LLM_MODELS_FILE may hold together (`LLM_MEMORY_BUDGET`): weights plus
   * KV caches as the engine reports them. Default: 75% of this machine's (or container's) memory.
   */
  memoryBudgetBytes: number
  /** A model of LLM_MODELS_FILE with no request for this long is unloaded; 0: never. */
  modelIdleTtlMs: number
  contextSize: number
  /** Cap on reply tokens: requests asking for more are clamped to it. */
  maxTokens: number
  temperature: number
  topP: number
  /** Penalty for repeating recent tokens (1 = off); small models loop without it. */
  repeatPenalty: number
  /** True when `LLM_REPEAT_PENALTY` was set (remote backends get it only then). */
  repeatPenaltyIsSet: boolean
  /**
   * Where replies are generated (`LLM_BACKENDS`): `local` (this process, the default) and/or
   * OpenAI-compatible servers (llama-server, vLLM) by URL. More than one goes through a pool.
   */
  backends: Backend[]
  /** Key for the backend URLs that carry none of their own (`LLM_BACKEND_API_KEY`). */
  backendApiKey: string | undefined
  threads: number | undefined
  gpuLayers: number
  parallel: number
  /** Requests that may wait for a slot before 429. */
  maxQueue: number
  /**
   * Host memory for saved conversation states (MiB), so a returning conversation whose slot
   * another one took skips its history. Unset: the engine's default (min(25% of free memory,
   * 2 GiB)); 0 disables.
   */
  promptCacheMb: number | undefined
  /** Folder for states that fall out of memory; they survive a restart. Unset: none. */
  promptCacheDir: string | undefined
  /** Disk the folder may use (MiB). Unset: the engine's default (10 GiB). */
  promptCacheDiskMb: number | undefined
  /** The engine's `responsiveEventLoop`: a short scheduler slice for the event loop (Linux 6.12+). */
  responsiveEventLoop: boolean
  /** The engine's `threadPoll` (0–100): how long llama.cpp's workers busy-wait between steps. Unset: the engine's default. */
  threadPoll: number | undefined
  /** Per-request deadline (queue wait included); 504 after it. */
  timeoutMs: number
  port: number
  host: string
  /**
   * Bearer tokens accepted on /api and /v1 (and /metrics), each with a name that logs and
   * metrics use instead of the key (`API_KEYS=name:key,…`; `API_KEY` is one named `default`).
   * Empty: no key needed.
   */
  apiKeys: NamedKey[]
  /** Lets the service listen on a non-loopback HOST without keys (`ALLOW_NO_AUTH`). */
  allowNoAuth: boolean
  /**
   * Host names (the `Host` header) the service answers besides IP literals and `localhost`
   * (`ALLOWED_HOSTS`). On a loopback HOST they are always checked: a page whose domain rebinds
   * to 127.0.0.1 would otherwise call the API as its own origin.
   */
  allowedHosts: string[]
  /** /metrics without a key even when keys are set (`METRICS_PUBLIC`). */
  metricsPublic: boolean
  /**
   * Generation requests one client (its key's name, or its IP without keys) may have running
   * or queued at once, so one client cannot take every slot and the whole queue. 0: no cap.
   */
  maxInflightPerClient: number
  /** Node's HTTP server limits (see http-server.ts). */
  headersTimeoutMs: number
  requestTimeoutMs: number
  /** A socket with no traffic for this long is closed (it must outlast a non-streamed reply). */
  socketIdleTimeoutMs: number
  keepAliveTimeoutMs: number
  maxConnections: number
  /** A streamed reply whose reader takes no bytes for this long is dropped and cancelled. */
  slowReaderTimeoutMs: number
  /** While a streamed request waits for a slot, an SSE comment goes out this often. */
  sseKeepAliveMs: number
  /** A streamed reply's text goes out at most this often (the engine's `streamIntervalMs`). */
  streamIntervalMs: number
  /** On SIGTERM/SIGINT, running replies get this long to finish before they are cancelled. */
  shutdownGraceMs: number
  systemPrompt: string
  /** express.json body limit, e.g. '64kb'. */
  bodyLimit: string
  /** Longest single message, in characters. */
  maxMessageChars: number
  /** Most history messages /api/chat accepts (and most messages /v1 accepts). */
  maxHistoryMessages: number
  /** Requests per IP per minute on /api and /v1; 0 disables. */
  rateLimitPerMinute: number
  /** Express `trust proxy` (set when behind a reverse proxy so per-IP limits see real IPs). */
  trustProxy: boolean | number | string
  /** One log line per request on stdout. */
  logRequests: boolean
  /** Browser origins allowed to call /api and /v1 (CORS); '*' for any; empty: same origin only. */
  corsOrigins: string[]
  /**
   * Model of `/v1/embeddings` (`LLM_EMBEDDING_MODEL`): a GGUF path, or a name of the addon's
   * fetch script (`minilm`, a real embedding model; `smollm2`, `gemma3`). Loaded as an embedding engine on the first request. Unset: the
   * endpoint answers 501.
   */
  embeddingModel: string | undefined
  /** Its pooling (`LLM_EMBEDDING_POOLING`); unset: the model's own, else mean. */
  embeddingPooling: Pooling | undefined
  /** Reranker GGUF of `/v1/rerank` (`LLM_RERANK_MODEL`); loaded on the first request. */
  rerankModel: string | undefined
  /**
   * Test-only: napi-llama's fault injection spec (`NAPI_LLAMA_FAULTS`), handed to the engine
   * at load so tests can make a reply slow on purpose. Unset in production.
   */
  faults?: string
}

/** One accepted API key and the name that stands for it in logs and metrics. */
export interface NamedKey {
  name: string
  key: string
}

/** `API_KEY` (named `default`) and `API_KEYS=name:key,…`. */
function apiKeys(single: string | undefined, list: string | undefined): NamedKey[] {
  const keys: NamedKey[] = []
  if (single?.trim()) keys.push({ name: 'default', key: single.trim() })
  for (const entry of (list ?? '').split(',').map((e) => e.trim()).filter(Boolean)) {
    const at = entry.indexOf(':')
    const name = entry.slice(0, at).trim()
    const key = entry.slice(at + 1).trim()
    // The name becomes a metrics label and a log field: keep it plain.
    if (at <= 0 || !key || !/^[A-Za-z0-9_.-]+$/.test(name)) {
      throw new ConfigError('API_KEYS must be a comma-separated list of name:key, names of letters, digits, _ . -')
    }
    keys.push({ name, key })
  }
  const names = new Set(keys.map((k) => k.name))
  if (names.size !== keys.length) throw new ConfigError('API_KEYS: two keys share a name (API_KEY is named default)')
  if (new Set(keys.map((k) => k.key)).size !== keys.length) throw new ConfigError('API_KEYS: the same key appears twice')
  return keys
}

const LOOPBACK = new net.BlockList()
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4')
LOOPBACK.addAddress('::1', 'ipv6')

/** True for `localhost` and loopback addresses: only this machine can connect. */
export function isLoopback(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  if (bare === 'localhost') return true
  const family = net.isIP(bare)
  return family !== 0 && LOOPBACK.check(bare, family === 6 ? 'ipv6' : 'ipv4')
}

function list(raw: string | undefined): string[] {
  return (raw ?? '')
    .split(',')
    .map((o) => o.trim())
    .filter(Boolean)
}

/** One entry of `LLM_BACKENDS`. */
export type Backend = { kind: 'local' } | { kind: 'remote'; url: string }

/**
 * `LLM_BACKENDS`: comma-separated `local` and URLs. A URL may carry its own key as its password
 * (`http://:KEY@host:8080`); napi-llama moves it to the Authorization header.
 */
function backends(raw: string | undefined): Backend[] {
  const entries = (raw ?? '')
    .split(',')
    .map((e) => e.trim())
    .filter(Boolean)
  if (entries.length === 0) return [{ kind: 'local' }]
  const out: Backend[] = []
  for (const entry of entries) {
    if (entry.toLowerCase() === 'local') {
      if (out.some((b) => b.kind === 'local')) throw new ConfigError('LLM_BACKENDS names local twice')
      out.push({ kind: 'local' })
      continue
    }
    let url: URL
    try {
      url = new URL(entry)
    } catch {
      throw new ConfigError(`LLM_BACKENDS: "${entry.replace(/\/\/[^@/]*@/, '//…@')}" is neither local nor a URL`)
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new ConfigError(`LLM_BACKENDS: ${url.protocol} URLs are not supported (http or https)`)
    out.push({ kind: 'remote', url: entry })
  }
  return out
}

export const DEFAULT_SYSTEM_PROMPT =
  'تو یک دستیار هوشمند، مؤدب و دقیق هستی. همیشه به زبان فارسی روان و ساده پاسخ بده، ' +
  'پاسخ‌ها را کوتاه و مفید نگه دار، و اگر چیزی را نمی‌دانی صادقانه بگو.'

/** Poolings of an embedding model ('rank' is a reranker's: LLM_RERANK_MODEL). */
const POOLINGS: readonly Pooling[] = ['mean', 'cls', 'last']

function pooling(raw: string | undefined): Pooling | undefined {
  const value = raw?.trim().toLowerCase()
  if (!value) return undefined
  if (!(POOLINGS as readonly string[]).includes(value)) throw new ConfigError(`LLM_EMBEDDING_POOLING must be one of ${POOLINGS.join(', ')}, got "${raw}"`)
  return value as Pooling
}

/**
 * A model variable: the addon's test model names stand for their files in its models folder.
 * The file must exist at start: a typo should stop the service, not fail requests later.
 */
function modelFile(name: string, raw: string | undefined): string | undefined {
  const value = raw?.trim()
  if (!value) return undefined
  const file = modelFileOf(value)
  if (!fs.existsSync(file)) throw new ConfigError(`${name}: no model file at ${file} (the addon's npm run fetch-model minilm fetches the test embedding model)`)
  return file
}

/** The memory this process may use: the machine's, or its container's limit when lower. */
function availableMemory(): number {
  const constrained = process.constrainedMemory?.() ?? 0
  // A cgroup without a limit reports the largest 64-bit value.
  return constrained > 0 && constrained < os.totalmem() ? constrained : os.totalmem()
}

/** `LLM_MEMORY_BUDGET`: `8GiB`, `512MiB`, `1.5GB` or bytes. */
function memoryBudget(raw: string | undefined): number {
  const value = raw?.trim()
  if (!value) return Math.floor(availableMemory() * 0.75)
  const bytes = parseBytes(value)
  if (bytes === null || bytes < 1) throw new ConfigError(`LLM_MEMORY_BUDGET must be a size such as 8GiB, 512MiB or a number of bytes, got "${raw}"`)
  return bytes
}

/** `LLM_MODELS_FILE`; a model whose file alone exceeds the budget could never load, so it stops the start. */
function modelsFile(env: Env, budget: number): ModelSpec[] | undefined {
  const file = env.LLM_MODELS_FILE?.trim()
  if (!file) return undefined
  if (env.LLM_MODEL_PATH?.trim()) throw new ConfigError('LLM_MODELS_FILE and LLM_MODEL_PATH are both set: list the model in the models file instead')
  if (env.LLM_BACKENDS?.trim()) throw new ConfigError("LLM_MODELS_FILE and LLM_BACKENDS are both set: give the model's entry `backends` instead")
  const models = readModelsFile(path.resolve(file))
  for (const m of models) {
    if (m.source.kind === 'file' && m.source.sizeBytes > budget) {
      throw new ConfigError(`LLM_MODELS_FILE: model "${m.name}" is ${formatBytes(m.source.sizeBytes)} on disk, more than LLM_MEMORY_BUDGET (${formatBytes(budget)})`)
    }
  }
  return models
}

type Env = Record<string, string | undefined>

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer in [${min}, ${max}], got "${raw}"`)
  }
  return value
}

function num(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]
  if (raw === undefined || raw.trim() === '') return fallback
  const value = Number(raw)
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a number in [${min}, ${max}], got "${raw}"`)
  }
  return value
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase()
  if (raw === undefined || raw === '') return fallback
  if (['1', 'true', 'yes', 'on'].includes(raw)) return true
  if (['0', 'false', 'no', 'off'].includes(raw)) return false
  throw new ConfigError(`${name} must be true or false, got "${env[name]}"`)
}

/** An integer variable that may be left unset (the engine's default then applies). */
function optionalInt(env: Env, name: string, min: number, max: number): number | undefined {
  return env[name]?.trim() ? int(env, name, 0, min, max) : undefined
}

function trustProxy(raw: string | undefined): boolean | number | string {
  if (raw === undefined || raw.trim() === '') return false
  if (raw === 'true') return true
  if (raw === 'false') return false
  if (/^\d+$/.test(raw)) return Number(raw)
  return raw // a subnet list such as 'loopback, 10.0.0.0/8'
}

/** Builds the configuration from environment variables (see `.env.example`). */
export function loadConfig(env: Env = process.env): Config {
  const modelPath = env.LLM_MODEL_PATH?.trim()
  const host = env.HOST?.trim() || '127.0.0.1'
  const keys = apiKeys(env.API_KEY, env.API_KEYS)
  const allowNoAuth = bool(env, 'ALLOW_NO_AUTH', false)
  if (!isLoopback(host) && keys.length === 0 && !allowNoAuth) {
    throw new ConfigError(`HOST=${host} accepts connections from other machines: set API_KEY (or API_KEYS), or ALLOW_NO_AUTH=true to serve without a key`)
  }
  const parallel = int(env, 'LLM_PARALLEL', 4, 1, 64)
  const timeoutMs = int(env, 'LLM_TIMEOUT_MS', 120_000, 1, 3_600_000)
  const headersTimeoutMs = int(env, 'HEADERS_TIMEOUT_MS', 20_000, 1, 3_600_000)
  const requestTimeoutMs = int(env, 'REQUEST_TIMEOUT_MS', 60_000, 1, 3_600_000)
  // Node refuses a headers deadline beyond the whole request's.
  if (headersTimeoutMs > requestTimeoutMs) throw new ConfigError('HEADERS_TIMEOUT_MS must not exceed REQUEST_TIMEOUT_MS')
  // A non-streamed reply sends nothing until it is done: the idle deadline must outlast it.
  const socketIdleTimeoutMs = int(env, 'SOCKET_IDLE_TIMEOUT_MS', timeoutMs + 30_000, 1, 7_200_000)
  if (socketIdleTimeoutMs <= timeoutMs) throw new ConfigError('SOCKET_IDLE_TIMEOUT_MS must be longer than LLM_TIMEOUT_MS (a reply sends nothing until it is done)')
  const bodyLimit = env.BODY_LIMIT?.trim() || '64kb'
  if (!/^\d+(b|kb|mb)?$/i.test(bodyLimit)) {
    throw new ConfigError(`BODY_LIMIT must look like 64kb or 1mb, got "${bodyLimit}"`)
  }
  const threads = int(env, 'LLM_THREADS', 0, 0, 1024)
  const memoryBudgetBytes = memoryBudget(env.LLM_MEMORY_BUDGET)
  return {
    modelPath: modelPath ? path.resolve(modelPath) : defaultModelPath(),
    modelPathIsDefault: !modelPath,
    models: modelsFile(env, memoryBudgetBytes),
    memoryBudgetBytes,
    modelIdleTtlMs: int(env, 'LLM_MODEL_IDLE_TTL_MS', 300_000, 0, 2 ** 31 - 1),
    chatTemplate: chatTemplate(env.LLM_CHAT_TEMPLATE, 'LLM_CHAT_TEMPLATE'),
    contextSize: int(env, 'LLM_CONTEXT_SIZE', 4096, 256, 1 << 20),
    maxTokens: int(env, 'LLM_MAX_TOKENS', 512, 1, 1 << 20),
    temperature: num(env, 'LLM_TEMPERATURE', 0.7, 0, 2),
    topP: num(env, 'LLM_TOP_P', 0.9, 0, 1),
    repeatPenalty: num(env, 'LLM_REPEAT_PENALTY', 1.1, 0.5, 2),
    repeatPenaltyIsSet: Boolean(env.LLM_REPEAT_PENALTY?.trim()),
    backends: backends(env.LLM_BACKENDS),
    backendApiKey: env.LLM_BACKEND_API_KEY?.trim() || undefined,
    threads: threads === 0 ? undefined : threads,
    gpuLayers: int(env, 'LLM_GPU_LAYERS', 0, 0, 10_000),
    parallel,
    maxQueue: int(env, 'LLM_MAX_QUEUE', 32, 0, 100_000),
    promptCacheMb: optionalInt(env, 'LLM_PROMPT_CACHE_MB', 0, 1 << 30),
    promptCacheDir: env.LLM_PROMPT_CACHE_DIR?.trim() ? path.resolve(env.LLM_PROMPT_CACHE_DIR.trim()) : undefined,
    promptCacheDiskMb: optionalInt(env, 'LLM_PROMPT_CACHE_DISK_MB', 0, 1 << 30),
    responsiveEventLoop: bool(env, 'LLM_RESPONSIVE_EVENT_LOOP', true),
    threadPoll: optionalInt(env, 'LLM_THREAD_POLL', 0, 100),
    timeoutMs,
    port: int(env, 'PORT', 3000, 0, 65535),
    host,
    apiKeys: keys,
    allowNoAuth,
    allowedHosts: list(env.ALLOWED_HOSTS).map((h) => h.toLowerCase()),
    metricsPublic: bool(env, 'METRICS_PUBLIC', false),
    // Default: one client may fill every slot but never the queue, so others always get a place.
    maxInflightPerClient: int(env, 'MAX_INFLIGHT_PER_CLIENT', parallel, 0, 100_000),
    headersTimeoutMs,
    requestTimeoutMs,
    socketIdleTimeoutMs,
    keepAliveTimeoutMs: int(env, 'KEEP_ALIVE_TIMEOUT_MS', 5_000, 1, 3_600_000),
    maxConnections: int(env, 'MAX_CONNECTIONS', 1_000, 1, 1_000_000),
    slowReaderTimeoutMs: int(env, 'SLOW_READER_TIMEOUT_MS', 30_000, 1, 3_600_000),
    sseKeepAliveMs: int(env, 'SSE_KEEPALIVE_MS', 15_000, 1, 3_600_000),
    streamIntervalMs: int(env, 'STREAM_INTERVAL_MS', 25, 0, 60_000),
    shutdownGraceMs: int(env, 'SHUTDOWN_GRACE_MS', 10_000, 0, 3_600_000),
    systemPrompt: env.SYSTEM_PROMPT?.trim() || DEFAULT_SYSTEM_PROMPT,
    bodyLimit,
    maxMessageChars: int(env, 'MAX_MESSAGE_CHARS', 4000, 1, 1_000_000),
    maxHistoryMessages: int(env, 'MAX_HISTORY_MESSAGES', 50, 0, 10_000),
    rateLimitPerMinute: int(env, 'RATE_LIMIT_PER_MINUTE', 60, 0, 1_000_000),
    trustProxy: trustProxy(env.TRUST_PROXY?.trim()),
    logRequests: bool(env, 'LOG_REQUESTS', true),
    embeddingModel: modelFile('LLM_EMBEDDING_MODEL', env.LLM_EMBEDDING_MODEL),
    embeddingPooling: pooling(env.LLM_EMBEDDING_POOLING),
    rerankModel: modelFile('LLM_RERANK_MODEL', env.LLM_RERANK_MODEL),
    faults: env.NAPI_LLAMA_FAULTS?.trim() || undefined,
    corsOrigins: list(env.CORS_ORIGINS),
  }
}
