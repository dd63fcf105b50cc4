// Every failure napi-llama reports is a LlamaError with a stable `code`. The codes are the
// engine's own (binding.d.ts), so the list below cannot drift from the Rust side.
import type * as binding from '../binding'

/** Stable error codes: every failure is an `Error` whose `code` is one of these. */
export type ErrorCode = binding.ErrorCode

/** The error codes under their earlier name; the same union as `ErrorCode`. */
export type ErrorCodeName = ErrorCode

/** Every error code by name, for `err.code === ErrorCode.TIMEOUT`. */
export const ErrorCode: { readonly [K in ErrorCode]: K } = Object.freeze({
  MODEL_NOT_LOADED: 'MODEL_NOT_LOADED',
  MODEL_LOAD_FAILED: 'MODEL_LOAD_FAILED',
  INVALID_ARGUMENT: 'INVALID_ARGUMENT',
  CONTEXT_OVERFLOW: 'CONTEXT_OVERFLOW',
  TIMEOUT: 'TIMEOUT',
  ABORTED: 'ABORTED',
  QUEUE_FULL: 'QUEUE_FULL',
  UNAVAILABLE: 'UNAVAILABLE',
  ALREADY_INITIALIZED: 'ALREADY_INITIALIZED',
  INTERNAL: 'INTERNAL',
  // Exhaustive: a code added on the Rust side fails the build until it is listed here.
} satisfies { readonly [K in ErrorCode]: K })

/** The error every API rejects or throws with. Assert on `code`, not on `instanceof`. */
export class LlamaError extends Error {
  readonly code: ErrorCode
  /**
   * A remote backend's `Retry-After`, in milliseconds, on `QUEUE_FULL` and `MODEL_NOT_LOADED`
   * from a server that sent one.
   */
  readonly retryAfterMs?: number

  constructor(code: ErrorCode, message: string, retryAfterMs?: number) {
    super(message)
    this.name = 'LlamaError'
    this.code = code
    if (retryAfterMs !== undefined) this.retryAfterMs = retryAfterMs
  }
}

// Own keys only: 'toString' in ErrorCode is true through the prototype.
export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && Object.prototype.hasOwnProperty.call(ErrorCode, value)
}

// napi-rs status names that mean "the argument had the wrong type".
const NAPI_TYPE_ERRORS: ReadonlySet<unknown> = new Set([
  'InvalidArg',
  'ObjectExpected',
  'StringExpected',
  'NameExpected',
  'FunctionExpected',
  'NumberExpected',
  'BooleanExpected',
  'ArrayExpected',
  'BigintExpected',
])

/** What a thrown value says about itself, whatever was thrown. */
export function reasonOf(err: unknown): string {
  const e = err as { message?: unknown } | null | undefined
  return e && e.message !== undefined ? String(e.message) : String(err)
}

/** The one place native failures become LlamaErrors: the addon sets `err.code` natively. */
export function toError(err: unknown): LlamaError {
  if (err instanceof LlamaError) return err
  const e = err as { message?: unknown; code?: unknown } | null | undefined
  const message = e && e.message ? String(e.message) : String(err)
  if (e && isErrorCode(e.code)) return new LlamaError(e.code, message)
  if (e && NAPI_TYPE_ERRORS.has(e.code)) return new LlamaError(ErrorCode.INVALID_ARGUMENT, message)
  return new LlamaError(ErrorCode.INTERNAL, message)
}

/** A failure the engine delivered as an event rather than threw. */
export function fromFailure(f: binding.Failure): LlamaError {
  return new LlamaError(isErrorCode(f.code) ? f.code : ErrorCode.INTERNAL, f.message)
}

/** A request its caller aborted (signal, stream cancel). */
export function abortedError(): LlamaError {
  return new LlamaError(ErrorCode.ABORTED, 'the request was aborted by its AbortSignal')
}

export function invalid(message: string): LlamaError {
  return new LlamaError(ErrorCode.INVALID_ARGUMENT, message)
}
