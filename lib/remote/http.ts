// The HTTP transport of a remote engine: one undici Agent per backend (keep-alive connections,
// a connect timeout), requests that abort with the caller's signal, and every failure of the
// network turned into a coded LlamaError. undici rather than the global fetch: its Agent gives
// the connect timeout and keep-alive pool per backend, and its `request` skips the WHATWG
// stream layers on the per-token path.
import { Agent } from 'undici'
import type { Dispatcher } from 'undici'
import { ErrorCode, LlamaError, abortedError, reasonOf } from '../errors'

export interface HttpOptions {
  /** The server's root, without `/v1` and without credentials. */
  origin: string
  /** How errors and logs name the backend: its URL without credentials or query. */
  name: string
  apiKey: string | null
  headers: Record<string, string>
  connectTimeoutMs: number
}

export interface HttpReply {
  status: number
  headers: Record<string, string | string[] | undefined>
  body: Dispatcher.ResponseData['body']
}

/** Why the caller's AbortController fired: the request's own signal, its deadline, or unload. */
export type AbortCause = 'abort' | 'timeout' | 'unload'

/** Network error codes of Node and undici that mean the backend cannot be reached. */
const UNREACHABLE = new Map<string, string>([
  ['ECONNREFUSED', 'connection refused'],
  ['ECONNRESET', 'connection reset'],
  ['EPIPE', 'connection closed'],
  ['ENOTFOUND', 'host name not found'],
  ['EAI_AGAIN', 'host name lookup failed'],
  ['EHOSTUNREACH', 'host unreachable'],
  ['ENETUNREACH', 'network unreachable'],
  ['ETIMEDOUT', 'connection timed out'],
  ['UND_ERR_CONNECT_TIMEOUT', 'connect timeout'],
  ['UND_ERR_SOCKET', 'connection closed by the server'],
  ['UND_ERR_CLOSED', 'connection closed'],
  ['UND_ERR_DESTROYED', 'connection closed'],
  ['UND_ERR_HEADERS_TIMEOUT', 'no reply headers in time'],
  ['UND_ERR_BODY_TIMEOUT', 'the reply stalled'],
])

function isTlsFailure(code: string): boolean {
  return code.startsWith('ERR_TLS') || code.startsWith('ERR_SSL') || /CERT|SELF_SIGNED|UNABLE_TO_VERIFY/.test(code)
}

/** The network error code of `err` or of the error that caused it. */
function networkCode(err: unknown): string | null {
  let e = err as { code?: unknown; cause?: unknown } | null | undefined
  for (let depth = 0; e && depth < 4; depth++) {
    if (typeof e.code === 'string' && e.code !== 'UND_ERR_ABORTED' && e.code !== 'ABORT_ERR') return e.code
    e = e.cause as typeof e
  }
  return null
}

export class HttpClient {
  readonly name: string
  private readonly origin: string
  private readonly agent: Agent
  private readonly baseHeaders: Record<string, string>

  constructor(options: HttpOptions) {
    this.name = options.name
    this.origin = options.origin
    this.agent = new Agent({
      connect: { timeout: options.connectTimeoutMs },
      keepAliveTimeout: 30_000,
      // The caller's deadline bounds every request; a non-streamed reply sends its headers
      // only when generation is done, so no fixed headers or body timeout fits.
      headersTimeout: 0,
      bodyTimeout: 0,
    })
    this.baseHeaders = { ...options.headers }
    if (options.apiKey) this.baseHeaders.authorization = `Bearer ${options.apiKey}`
  }

  /**
   * Sends one request. Network failures reject with UNAVAILABLE; an abort rejects with the
   * error `onAbort` gives for the signal's reason. HTTP error statuses resolve: the caller
   * reads the body to learn what the server meant.
   */
  async send(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    signal: AbortSignal,
    extraHeaders?: Record<string, string>,
  ): Promise<HttpReply> {
    const headers: Record<string, string> = { ...this.baseHeaders, ...extraHeaders }
    let payload: string | undefined
    if (body !== undefined) {
      payload = JSON.stringify(body)
      headers['content-type'] = 'application/json'
    }
    try {
      const reply = await this.agent.request({ origin: this.origin, path, method, headers, body: payload, signal })
      return { status: reply.statusCode, headers: reply.headers, body: reply.body }
    } catch (err) {
      throw this.failure(err, signal)
    }
  }

  /** A failure while sending or reading, as the LlamaError the caller sees. */
  failure(err: unknown, signal: AbortSignal | null, context = ''): LlamaError {
    if (err instanceof LlamaError) return err
    if (signal && signal.aborted) return abortError(signal.reason)
    const code = networkCode(err)
    const where = context ? ` ${context}` : ''
    if (code !== null && UNREACHABLE.has(code)) {
      return new LlamaError(ErrorCode.UNAVAILABLE, `backend ${this.name}${where}: ${UNREACHABLE.get(code)} (${code})`)
    }
    if (code !== null && isTlsFailure(code)) {
      return new LlamaError(ErrorCode.UNAVAILABLE, `backend ${this.name}${where}: TLS failure (${code}: ${reasonOf(err)})`)
    }
    if (code !== null && code.startsWith('E')) {
      return new LlamaError(ErrorCode.UNAVAILABLE, `backend ${this.name}${where}: ${reasonOf(err)} (${code})`)
    }
    return new LlamaError(ErrorCode.INTERNAL, `backend ${this.name}${where}: ${reasonOf(err)}`)
  }

  /** Closes the keep-alive connections; requests still running are cut. */
  async close(): Promise<void> {
    await this.agent.destroy().catch(() => undefined)
  }
}

/** The error a request ends with when its AbortController fired for `cause`. */
export function abortError(cause: unknown): LlamaError {
  return cause instanceof LlamaError ? cause : abortedError()
}

/** Reads a whole reply body as text, at most `limit` bytes (the rest is discarded). */
export async function readText(body: HttpReply['body'], limit = 16 * 1024 * 1024): Promise<string> {
  const parts: Buffer[] = []
  let size = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (size < limit) parts.push(chunk)
    size += chunk.length
  }
  return Buffer.concat(parts).toString('utf8')
}

/** `Retry-After` in milliseconds (seconds or an HTTP date), or undefined. */
export function retryAfterMs(headers: HttpReply['headers']): number | undefined {
  const raw = headers['retry-after']
  const value = Array.isArray(raw) ? raw[0] : raw
  if (!value) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return seconds * 1000
  const date = Date.parse(value)
  return Number.isFinite(date) ? Math.max(0, date - Date.now()) : undefined
}
