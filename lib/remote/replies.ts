// Reading what an OpenAI-compatible server answers: error replies as coded LlamaErrors, and
// completions (whole or streamed) as the same Generation fields a local engine reports.
import type * as binding from '../../binding'
import { ErrorCode, LlamaError } from '../errors'
import type { HttpReply } from './http'
import { retryAfterMs } from './http'

type Generation = binding.Generation
type FinishReason = binding.FinishReason

/** `{ error: { message, type, code, … } }` (OpenAI, llama-server) or `{ message }`/`{ detail }` (vLLM). */
interface ErrorBody {
  message: string
  type: string
  promptTokens?: number
  contextSize?: number
}

function errorBody(text: string): ErrorBody | null {
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch {
    return null
  }
  if (!parsed || typeof parsed !== 'object') return null
  const root = parsed as Record<string, unknown>
  const inner = root.error && typeof root.error === 'object' ? (root.error as Record<string, unknown>) : root
  const message = inner.message ?? inner.detail ?? (typeof root.error === 'string' ? root.error : undefined)
  if (typeof message !== 'string') return null
  const out: ErrorBody = { message, type: typeof inner.type === 'string' ? inner.type : '' }
  if (typeof inner.n_prompt_tokens === 'number') out.promptTokens = inner.n_prompt_tokens
  if (typeof inner.n_ctx === 'number') out.contextSize = inner.n_ctx
  return out
}

const CONTEXT_MESSAGES = /exceed(s|ed)? (the )?(available )?context|context (length|size|window)|maximum context|too many tokens|prompt is too long/i
const LOADING_MESSAGES = /loading/i

function preview(text: string): string {
  const flat = text.replace(/\s+/g, ' ').trim()
  return flat.length > 120 ? `${flat.slice(0, 120)}…` : flat
}

/** The coded error for a reply whose status is not 200. */
export function replyError(reply: Pick<HttpReply, 'status' | 'headers'>, text: string, backend: string): LlamaError {
  const { status } = reply
  const body = errorBody(text)
  const said = (body ? body.message : preview(text)) || 'no message'
  const retryAfter = retryAfterMs(reply.headers)
  const prefix = `backend ${backend} answered ${status}`
  if (status === 400 || status === 413 || status === 422) {
    if (body && (body.type === 'exceed_context_size_error' || CONTEXT_MESSAGES.test(body.message))) {
      const counts =
        body.promptTokens !== undefined && body.contextSize !== undefined
          ? ` (prompt ${body.promptTokens} tokens, context ${body.contextSize})`
          : ''
      return new LlamaError(
        ErrorCode.CONTEXT_OVERFLOW,
        `${prefix}: the prompt does not fit the context${counts}: ${said}. Shorten the input or use contextOverflow: 'drop-oldest'`,
      )
    }
    return new LlamaError(ErrorCode.INVALID_ARGUMENT, `${prefix}: ${said}`)
  }
  if (status === 401 || status === 403) {
    return new LlamaError(ErrorCode.UNAVAILABLE, `${prefix}: the server refused our credentials (${said}): check apiKey`)
  }
  if (status === 404) {
    return new LlamaError(ErrorCode.MODEL_NOT_LOADED, `${prefix}: ${said}: check the model name (Engine.connect's model option)`)
  }
  if (status === 429) {
    return new LlamaError(ErrorCode.QUEUE_FULL, `${prefix}: too many requests (${said}): retry later`, retryAfter)
  }
  if (status === 503) {
    if ((body && LOADING_MESSAGES.test(body.message)) || (!body && LOADING_MESSAGES.test(text))) {
      return new LlamaError(ErrorCode.MODEL_NOT_LOADED, `${prefix}: the model is still loading: retry shortly`, retryAfter)
    }
    return new LlamaError(ErrorCode.QUEUE_FULL, `${prefix}: busy (${said}): retry later`, retryAfter)
  }
  if (status === 502 || status === 504) {
    return new LlamaError(ErrorCode.UNAVAILABLE, `${prefix}: a proxy could not reach the server (${said})`)
  }
  if (!body) return malformed(backend, `a ${status} reply that is not an error object: ${preview(text) || '(empty)'}`)
  return new LlamaError(ErrorCode.INTERNAL, `${prefix}: ${said}`)
}

/** A reply that breaks the protocol: the server, not the caller, is at fault. */
export function malformed(backend: string, what: string): LlamaError {
  return new LlamaError(ErrorCode.INTERNAL, `backend ${backend} sent a malformed reply: ${what}`)
}

/** What a server reports about one completion, gathered from a reply or a stream's chunks. */
export interface CompletionReport {
  finishReason: string | null
  promptTokens: number | null
  completionTokens: number | null
  cachedTokens: number | null
  /** llama-server's `timings`. */
  serverPromptMs: number | null
  serverGenerateMs: number | null
  serverTokensPerSecond: number | null
}

export function emptyReport(): CompletionReport {
  return {
    finishReason: null,
    promptTokens: null,
    completionTokens: null,
    cachedTokens: null,
    serverPromptMs: null,
    serverGenerateMs: null,
    serverTokensPerSecond: null,
  }
}

const num = (v: unknown): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : null)

/** Folds the usage, timings and finish reason of one reply object (or stream chunk) into `report`. */
export function noteReport(report: CompletionReport, value: Record<string, unknown>): void {
  const usage = value.usage as Record<string, unknown> | null | undefined
  if (usage && typeof usage === 'object') {
    report.promptTokens = num(usage.prompt_tokens) ?? report.promptTokens
    report.completionTokens = num(usage.completion_tokens) ?? report.completionTokens
    const details = usage.prompt_tokens_details as Record<string, unknown> | null | undefined
    if (details && typeof details === 'object') report.cachedTokens = num(details.cached_tokens) ?? report.cachedTokens
  }
  const timings = value.timings as Record<string, unknown> | null | undefined
  if (timings && typeof timings === 'object') {
    report.serverPromptMs = num(timings.prompt_ms) ?? report.serverPromptMs
    report.serverGenerateMs = num(timings.predicted_ms) ?? report.serverGenerateMs
    report.serverTokensPerSecond = num(timings.predicted_per_second) ?? report.serverTokensPerSecond
    if (report.cachedTokens === null) report.cachedTokens = num(timings.cache_n)
    if (report.promptTokens === null) {
      const evaluated = num(timings.prompt_n)
      const cached = num(timings.cache_n)
      if (evaluated !== null) report.promptTokens = evaluated + (cached ?? 0)
    }
    if (report.completionTokens === null) report.completionTokens = num(timings.predicted_n)
  }
  const choices = value.choices
  if (Array.isArray(choices) && choices.length > 0) {
    const reason = (choices[0] as { finish_reason?: unknown }).finish_reason
    if (typeof reason === 'string') report.finishReason = reason
  }
}

/** The text of the first choice: a chat message's content, a text completion's text, or a stream delta's. */
export function choiceText(value: Record<string, unknown>): string | null {
  const choices = value.choices
  if (!Array.isArray(choices)) return null
  if (choices.length === 0) return ''
  const choice = choices[0] as Record<string, unknown>
  if (!choice || typeof choice !== 'object') return null
  const holder = (choice.message ?? choice.delta) as Record<string, unknown> | undefined
  if (holder && typeof holder === 'object') {
    if (holder.content === null || holder.content === undefined) return ''
    return typeof holder.content === 'string' ? holder.content : null
  }
  if (typeof choice.text === 'string') return choice.text
  return choice.finish_reason !== undefined ? '' : null
}

/**
 * OpenAI's `stop` covers both an end-of-generation token and a stop string; a local engine
 * tells them apart. Without stop strings in the request it can only be the end token.
 */
function finishReasonOf(reason: string | null, stopsRequested: boolean): FinishReason {
  if (reason === 'length') return 'length'
  if (reason === 'stop' && !stopsRequested) return 'eos'
  return 'stop'
}

export interface ClientClock {
  submittedAt: number
  firstTokenAt: number | null
  doneAt: number
}

/** The Generation a local engine would report, from the server's figures where it gave them. */
export function toGeneration(
  text: string,
  report: CompletionReport,
  clock: ClientClock,
  stopsRequested: boolean,
  requestId: string,
  droppedMessages: number,
): Generation {
  const total = clock.doneAt - clock.submittedAt
  const completionTokens = report.completionTokens ?? 0
  const generateMs = report.serverGenerateMs ?? (clock.firstTokenAt !== null ? clock.doneAt - clock.firstTokenAt : 0)
  const ttftMs = clock.firstTokenAt !== null ? clock.firstTokenAt - clock.submittedAt : Math.max(0, total - generateMs)
  const promptMs = report.serverPromptMs ?? ttftMs
  const tokensPerSecond =
    report.serverTokensPerSecond ?? (completionTokens >= 2 && generateMs > 0 ? ((completionTokens - 1) * 1000) / generateMs : 0)
  return {
    text,
    finishReason: finishReasonOf(report.finishReason, stopsRequested),
    promptTokens: report.promptTokens ?? 0,
    completionTokens,
    cachedTokens: report.cachedTokens ?? 0,
    droppedMessages,
    timings: {
      queueMs: Math.max(0, ttftMs - promptMs),
      promptMs,
      ttftMs,
      generateMs,
      tokensPerSecond,
    },
    requestId,
  }
}
