// Request bodies → typed, bounded values. Each check names the field it rejects, so a client
// gets a 400 that says what to fix. Limits come from the configuration (see config.ts).
import type { ChatMessage } from 'napi-llama'
import type { Config } from './config'
import { badRequest } from './errors'
import type { ReplyOptions } from './llm'

type Limits = Pick<Config, 'maxMessageChars' | 'maxHistoryMessages' | 'systemPrompt'>

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

function requireObjectBody(body: unknown): Record<string, unknown> {
  if (!isObject(body)) {
    throw badRequest('Request body must be a JSON object (send Content-Type: application/json)')
  }
  return body
}

function optionalBoolean(body: Record<string, unknown>, field: string): boolean | undefined {
  const v = body[field]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'boolean') throw badRequest(`'${field}' must be a boolean`, field)
  return v
}

function optionalNumber(
  body: Record<string, unknown>,
  field: string,
  min: number,
  max: number,
  integer = false,
): number | undefined {
  const v = body[field]
  if (v === undefined || v === null) return undefined
  if (typeof v !== 'number' || !Number.isFinite(v) || (integer && !Number.isInteger(v)) || v < min || v > max) {
    const kind = integer ? 'an integer' : 'a number'
    throw badRequest(`'${field}' must be ${kind} between ${min} and ${max}`, field)
  }
  return v
}

function checkNul(text: string, field: string): string {
  if (text.includes('\u0000')) throw badRequest(`'${field}' contains a NUL character`, field)
  return text
}

function checkText(text: string, field: string, limits: Limits): string {
  if (text.length > limits.maxMessageChars) {
    throw badRequest(`'${field}' is longer than ${limits.maxMessageChars} characters`, field, 'message_too_long')
  }
  return checkNul(text, field)
}

// ---- POST /api/chat ----------------------------------------------------------------------------

export interface ChatRequest {
  messages: ChatMessage[]
  stream: boolean
}

/** `{ message, history?, stream? }`: the service's own chat API. */
export function parseChatRequest(body: unknown, limits: Limits): ChatRequest {
  const b = requireObjectBody(body)
  if (typeof b.message !== 'string') throw badRequest("'message' is required and must be a string", 'message')
  const message = checkText(b.message, 'message', limits)
  if (message.trim() === '') throw badRequest("'message' must not be empty", 'message')

  const history: ChatMessage[] = []
  if (b.history !== undefined && b.history !== null) {
    if (!Array.isArray(b.history)) throw badRequest("'history' must be an array of { role, content }", 'history')
    if (b.history.length > limits.maxHistoryMessages) {
      throw badRequest(`'history' has more than ${limits.maxHistoryMessages} messages`, 'history', 'history_too_long')
    }
    b.history.forEach((item: unknown, i: number) => {
      const field = `history[${i}]`
      if (!isObject(item)) throw badRequest(`'${field}' must be an object { role, content }`, field)
      if (item.role !== 'user' && item.role !== 'assistant') {
        throw badRequest(`'${field}.role' must be 'user' or 'assistant'`, `${field}.role`)
      }
      if (typeof item.content !== 'string') throw badRequest(`'${field}.content' must be a string`, `${field}.content`)
      // Earlier replies are the model's own text, bounded by the reply cap and the body limit;
      // the per-message limit is for what users type.
      const content = item.role === 'user' ? checkText(item.content, `${field}.content`, limits) : checkNul(item.content, `${field}.content`)
      history.push({ role: item.role, content })
    })
  }
  return {
    messages: [{ role: 'system', content: limits.systemPrompt }, ...history, { role: 'user', content: message }],
    stream: optionalBoolean(b, 'stream') ?? false,
  }
}

// ---- POST /v1/chat/completions -----------------------------------------------------------------

export interface CompletionRequest {
  model: string | undefined
  messages: ChatMessage[]
  stream: boolean
  includeUsage: boolean
  options: ReplyOptions
}

const UNSUPPORTED = ['tools', 'tool_choice', 'functions', 'function_call', 'audio', 'prediction'] as const

function messageContent(content: unknown, field: string, limits: Limits): string {
  if (typeof content === 'string') return checkText(content, field, limits)
  if (Array.isArray(content)) {
    // The content-parts form: only text parts can be served by a text model.
    const texts = content.map((part: unknown, i: number) => {
      if (!isObject(part) || part.type !== 'text' || typeof part.text !== 'string') {
        throw badRequest(`'${field}[${i}]' must be a text part { type: 'text', text } (images and audio are not supported)`, `${field}[${i}]`)
      }
      return part.text
    })
    return checkText(texts.join('\n'), field, limits)
  }
  throw badRequest(`'${field}' must be a string or an array of text parts`, field)
}

/** OpenAI's chat completion request; fields this server cannot honour are rejected, not ignored. */
export function parseCompletionRequest(body: unknown, limits: Limits): CompletionRequest {
  const b = requireObjectBody(body)
  for (const field of UNSUPPORTED) {
    const value = b[field]
    // Clients often send an empty tool list, or tool_choice 'none'/'auto' with no tools: no tools.
    const noTools = (Array.isArray(value) && value.length === 0) || (field === 'tool_choice' && (value === 'none' || value === 'auto'))
    if (value !== undefined && value !== null && !noTools) {
      throw badRequest(`'${field}' is not supported by this server`, field, 'unsupported_parameter')
    }
  }
  if (b.model !== undefined && typeof b.model !== 'string') throw badRequest("'model' must be a string", 'model')
  if (b.n !== undefined && b.n !== null && b.n !== 1) throw badRequest("'n' must be 1 (one choice per request)", 'n', 'unsupported_parameter')
  if (b.logprobs === true) throw badRequest("'logprobs' is not supported by this server", 'logprobs', 'unsupported_parameter')

  if (!Array.isArray(b.messages) || b.messages.length === 0) {
    throw badRequest("'messages' must be a non-empty array", 'messages')
  }
  if (b.messages.length > limits.maxHistoryMessages + 2) {
    throw badRequest(`'messages' has more than ${limits.maxHistoryMessages + 2} messages`, 'messages', 'history_too_long')
  }
  const messages: ChatMessage[] = b.messages.map((item: unknown, i: number) => {
    const field = `messages[${i}]`
    if (!isObject(item)) throw badRequest(`'${field}' must be an object { role, content }`, field)
    const role = item.role === 'developer' ? 'system' : item.role
    if (role !== 'system' && role !== 'user' && role !== 'assistant') {
      throw badRequest(`'${field}.role' must be 'system', 'developer', 'user' or 'assistant'`, `${field}.role`)
    }
    // An assistant turn may have null content (it carried tool calls in the client's history).
    if (role === 'assistant' && (item.content === null || item.content === undefined)) return { role, content: '' }
    const content = messageContent(item.content, `${field}.content`, role === 'assistant' ? { ...limits, maxMessageChars: Infinity } : limits)
    return { role, content }
  })
  if (messages[messages.length - 1].role === 'assistant') {
    throw badRequest("the last message must not be from the assistant (prefill is not supported)", 'messages')
  }
  // The service speaks Persian unless the caller brings its own system prompt.
  if (!messages.some((m) => m.role === 'system')) messages.unshift({ role: 'system', content: limits.systemPrompt })

  const stream = optionalBoolean(b, 'stream') ?? false
  let includeUsage = false
  if (b.stream_options !== undefined && b.stream_options !== null) {
    if (!isObject(b.stream_options)) throw badRequest("'stream_options' must be an object", 'stream_options')
    includeUsage = optionalBoolean(b.stream_options, 'include_usage') ?? false
  }

  const maxTokens =
    optionalNumber(b, 'max_completion_tokens', 1, Number.MAX_SAFE_INTEGER, true) ??
    optionalNumber(b, 'max_tokens', 1, Number.MAX_SAFE_INTEGER, true)

  let stop: string[] | undefined
  if (typeof b.stop === 'string') stop = [b.stop]
  else if (Array.isArray(b.stop)) {
    if (b.stop.length > 16 || !b.stop.every((s) => typeof s === 'string' && s.length > 0)) {
      throw badRequest("'stop' must be a string or an array of at most 16 non-empty strings", 'stop')
    }
    stop = b.stop as string[]
  } else if (b.stop !== undefined && b.stop !== null) throw badRequest("'stop' must be a string or an array of strings", 'stop')
  if (stop && stop.some((s) => s === '')) throw badRequest("'stop' strings must not be empty", 'stop')

  return {
    model: b.model as string | undefined,
    messages,
    stream,
    includeUsage,
    options: {
      maxTokens,
      temperature: optionalNumber(b, 'temperature', 0, 2),
      topP: optionalNumber(b, 'top_p', 0, 1),
      presencePenalty: optionalNumber(b, 'presence_penalty', -2, 2),
      frequencyPenalty: optionalNumber(b, 'frequency_penalty', -2, 2),
      seed: seed(b),
      stop,
      jsonSchema: responseFormatSchema(b.response_format),
    },
  }
}

/** OpenAI takes any 64-bit seed; the engine's seeds are 32-bit, so larger or negative ones wrap. */
function seed(b: Record<string, unknown>): number | undefined {
  const value = optionalNumber(b, 'seed', Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true)
  return value === undefined ? undefined : ((value % 2 ** 32) + 2 ** 32) % 2 ** 32
}

/** `response_format`: 'text' (default), 'json_object', or 'json_schema' with a schema. */
function responseFormatSchema(format: unknown): object | undefined {
  if (format === undefined || format === null) return undefined
  if (!isObject(format)) throw badRequest("'response_format' must be an object", 'response_format')
  switch (format.type) {
    case 'text':
      return undefined
    case 'json_object':
      return { type: 'object' }
    case 'json_schema': {
      const spec = format.json_schema
      if (!isObject(spec) || !isObject(spec.schema)) {
        throw badRequest("'response_format.json_schema.schema' must be a JSON Schema object", 'response_format.json_schema')
      }
      return spec.schema
    }
    default:
      throw badRequest("'response_format.type' must be 'text', 'json_object' or 'json_schema'", 'response_format.type')
  }
}
