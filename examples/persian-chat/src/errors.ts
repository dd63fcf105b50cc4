// One error type for every endpoint, rendered as OpenAI's error body
// `{ error: { message, type, param, code } }` with the matching HTTP status. Every failure path
// (validation, auth, rate limit, the addon's LlamaError codes, body parsing) ends up here, so a
// client never sees a stack trace or an HTML error page.

export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'timeout_error'
  | 'service_unavailable_error'
  | 'server_error'

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly type: ErrorType,
    readonly code: string,
    message: string,
    readonly param: string | null = null,
  ) {
    super(message)
  }

  /**
   * Hints for clients that retry on their own (the `openai` client retries 408/429/5xx twice):
   * come back later when busy or loading; never repeat a request that ran into its deadline,
   * which would only hold a slot for another full timeout when the server is already slow.
   */
  get headers(): Record<string, string> {
    if (this.code === 'queue_full' || this.code === 'backend_unavailable' || this.code === 'too_many_concurrent_requests') return { 'Retry-After': '1' }
    if (this.code === 'model_not_loaded') return { 'Retry-After': '5' }
    // A model larger than the memory budget stays so until the operator changes the budget.
    if (this.code === 'timeout' || this.code === 'aborted' || this.code === 'model_too_large') return { 'x-should-retry': 'false' }
    return {}
  }

  toBody() {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } }
  }
}

export const badRequest = (message: string, param: string | null = null, code = 'invalid_request') =>
  new ApiError(400, 'invalid_request_error', code, message, param)

/**
 * The addon's stable error codes (napi-llama `LlamaError.code`) mapped to HTTP. ABORTED happens
 * when the client went away (nobody sees the status) or when the service shuts down mid-request.
 */
const LLAMA_ERRORS: Record<string, [number, ErrorType, string]> = {
  INVALID_ARGUMENT: [400, 'invalid_request_error', 'invalid_request'],
  CONTEXT_OVERFLOW: [400, 'invalid_request_error', 'context_length_exceeded'],
  TIMEOUT: [504, 'timeout_error', 'timeout'],
  QUEUE_FULL: [429, 'rate_limit_error', 'queue_full'],
  // A remote backend (LLM_BACKENDS) cannot be reached: a gateway's failure, not the client's.
  UNAVAILABLE: [502, 'service_unavailable_error', 'backend_unavailable'],
  MODEL_NOT_LOADED: [503, 'service_unavailable_error', 'model_not_loaded'],
  MODEL_LOAD_FAILED: [503, 'service_unavailable_error', 'model_not_loaded'],
  ABORTED: [503, 'service_unavailable_error', 'aborted'],
  INTERNAL: [500, 'server_error', 'internal_error'],
}

const INTERNAL_MESSAGE = 'Internal server error'

/** Converts anything thrown into an ApiError; unknown errors become a 500 without details. */
export function toApiError(err: unknown): ApiError {
  if (err instanceof ApiError) return err
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code === 'string' && code in LLAMA_ERRORS) {
    const [status, type, apiCode] = LLAMA_ERRORS[code]
    // An engine fault's own message is for the log (clientError), not for the client.
    return new ApiError(status, type, apiCode, status === 500 ? INTERNAL_MESSAGE : (err as Error).message)
  }
  // body-parser errors carry `type` and `status` (bad JSON, too large, bad charset).
  const parser = err as { type?: unknown; status?: unknown; message?: unknown }
  if (parser && parser.type === 'entity.parse.failed') {
    return badRequest(`Request body is not valid JSON: ${String(parser.message)}`, null, 'invalid_json')
  }
  if (parser && parser.type === 'entity.too.large') {
    return new ApiError(413, 'invalid_request_error', 'request_too_large', 'Request body is too large')
  }
  if (parser && typeof parser.status === 'number' && parser.status >= 400 && parser.status < 500) {
    return new ApiError(parser.status, 'invalid_request_error', 'invalid_request', String(parser.message))
  }
  return new ApiError(500, 'server_error', 'internal_error', INTERNAL_MESSAGE)
}

/**
 * What a client may see of a failure. A 500 is a bug or an engine fault whose message may hold
 * file paths or internals: the client gets a fixed message with the request id, and the detail
 * goes to the log under that id.
 */
export function clientError(err: unknown, requestId: string): ApiError {
  const apiError = toApiError(err)
  if (apiError.status !== 500) return apiError
  const detail = err instanceof Error ? (err.stack ?? err.message) : String(err)
  process.stderr.write(`[persian-chat] internal error (request ${requestId}): ${detail}\n`)
  return new ApiError(500, 'server_error', 'internal_error', `${INTERNAL_MESSAGE} (request id ${requestId})`)
}
