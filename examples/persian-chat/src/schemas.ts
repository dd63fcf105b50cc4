// Request bodies → typed, bounded values. The shapes are zod schemas (a well-kept schema library
// rather than hand-written checks: one declaration gives the type, the checks and the error
// path). Every rejection becomes the same 400 body as before: the message names the field, and
// `param` is its path (`messages[0].role`). Limits come from the configuration (see config.ts).
//
// New endpoints add their schema here, next to these, and parse through `parseWith`.
import { z } from 'zod'
import type { ChatMessage, ToolChoice, ToolDefinition } from 'napi-llama'
import type { Config } from './config'
import { ApiError, badRequest } from './errors'
import type { ReplyOptions } from './llm'

export type Limits = Pick<Config, 'maxMessageChars' | 'maxHistoryMessages' | 'systemPrompt'>

/** In messages, `{field}` stands for the offending field's path; `parseWith` fills it in. */
const FIELD = '{field}'

const BODY_NOT_OBJECT = 'Request body must be a JSON object (send Content-Type: application/json)'

/** An issue whose API error code is not the default `invalid_request`. */
const withCode = (code: string, error: string) => ({ error, params: { code } })

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)

// ---- OpenAI's request fields beyond those the server honours -----------------------------------

/** Fields that label, bill or store a request on OpenAI's side: they never change a reply here. */
export const IGNORED_OPENAI_FIELDS = ['user', 'metadata', 'store', 'service_tier', 'safety_identifier', 'prompt_cache_key'] as const

/**
 * Fields that would change the reply in a way this server cannot honour: a 400
 * `unsupported_parameter` naming the field, unless the value asks for nothing (clients often
 * send an empty list or `n: 1`). `null` always counts as not sent. (`tools`, `tool_choice` and
 * `parallel_tool_calls` are honoured: see the completion schema.)
 */
export const UNSUPPORTED_OPENAI_FIELDS: Record<string, { accepts: (value: unknown) => boolean; only?: string }> = {
  // OpenAI's deprecated form of tools: send `tools` instead.
  functions: { accepts: (v) => Array.isArray(v) && v.length === 0, only: 'an empty list' },
  function_call: { accepts: (v) => v === 'none' || v === 'auto', only: "'none' or 'auto'" },
  n: { accepts: (v) => v === 1, only: '1 (one choice per request)' },
  logprobs: { accepts: (v) => v === false, only: 'false' },
  top_logprobs: { accepts: (v) => v === 0, only: '0' },
  logit_bias: { accepts: (v) => isObject(v) && Object.keys(v).length === 0, only: 'an empty object' },
  modalities: { accepts: (v) => Array.isArray(v) && v.every((m) => m === 'text'), only: "['text']" },
  audio: { accepts: () => false },
  prediction: { accepts: () => false },
  reasoning_effort: { accepts: () => false },
  verbosity: { accepts: () => false },
  web_search_options: { accepts: () => false },
}

function unsupportedField(field: string, rule: { accepts: (value: unknown) => boolean; only?: string }) {
  const message = `'${field}' is not supported by this server` + (rule.only ? ` (only ${rule.only})` : '')
  return z
    .unknown()
    .refine((v) => v === undefined || v === null || rule.accepts(v), withCode('unsupported_parameter', message))
    .optional()
}

// ---- building blocks ---------------------------------------------------------------------------

const noNul = (s: string) => !s.includes('\u0000')
const NUL_MESSAGE = `'${FIELD}' contains a NUL character`

/** Text a user typed: bounded by MAX_MESSAGE_CHARS, no NUL. */
function userText(limits: Limits, typeError: string) {
  return z
    .string({ error: typeError })
    .refine((s) => s.length <= limits.maxMessageChars, withCode('message_too_long', `'${FIELD}' is longer than ${limits.maxMessageChars} characters`))
    .refine(noNul, NUL_MESSAGE)
}

function numberIn(min: number, max: number, integer = false) {
  const error = `'${FIELD}' must be ${integer ? 'an integer' : 'a number'} between ${min} and ${max}`
  const n = z.number({ error }).min(min, { error }).max(max, { error })
  return (integer ? n.int({ error }) : n).nullish()
}

const optionalBoolean = z.boolean({ error: `'${FIELD}' must be a boolean` }).nullish()

// ---- POST /api/chat ----------------------------------------------------------------------------

export interface ChatRequest {
  /** The model asked for (the web page's picker); unset: the default one. */
  model: string | undefined
  messages: ChatMessage[]
  stream: boolean
}

function chatSchema(limits: Limits) {
  const historyItem = z
    .object(
      {
        role: z.enum(['user', 'assistant'], { error: `'${FIELD}' must be 'user' or 'assistant'` }),
        // Earlier replies are the model's own text, bounded by the reply cap and the body limit;
        // the per-message limit is for what users type (checked below).
        content: z.string({ error: `'${FIELD}' must be a string` }).refine(noNul, NUL_MESSAGE),
      },
      { error: `'${FIELD}' must be an object { role, content }` },
    )
    .superRefine((item, ctx) => {
      if (item.role === 'user' && item.content.length > limits.maxMessageChars) {
        ctx.addIssue({ code: 'custom', path: ['content'], message: `'${FIELD}' is longer than ${limits.maxMessageChars} characters`, params: { code: 'message_too_long' } })
      }
    })

  return z
    .object(
      {
        message: userText(limits, "'message' is required and must be a string").refine((s) => s.trim() !== '', "'message' must not be empty"),
        history: z
          .array(historyItem, { error: "'history' must be an array of { role, content }" })
          .refine((h) => h.length <= limits.maxHistoryMessages, withCode('history_too_long', `'history' has more than ${limits.maxHistoryMessages} messages`))
          .nullish(),
        stream: optionalBoolean,
        model: z.string({ error: "'model' must be a string" }).nullish(),
      },
      { error: BODY_NOT_OBJECT },
    )
    .transform(
      (b): ChatRequest => ({
        model: b.model ?? undefined,
        messages: [{ role: 'system', content: limits.systemPrompt }, ...(b.history ?? []), { role: 'user', content: b.message }],
        stream: b.stream ?? false,
      }),
    )
}

// ---- POST /v1/chat/completions -----------------------------------------------------------------

export interface CompletionRequest {
  model: string | undefined
  messages: ChatMessage[]
  stream: boolean
  includeUsage: boolean
  options: ReplyOptions
}

/** OpenAI takes any 64-bit seed; the engine's seeds are 32-bit, so larger or negative ones wrap. */
const wrapSeed = (value: number) => ((value % 2 ** 32) + 2 ** 32) % 2 ** 32

function completionSchema(limits: Limits) {
  // The content-parts form: only text parts can be served by a text model.
  const textPart = z
    .unknown()
    .refine(
      (p) => isObject(p) && p.type === 'text' && typeof p.text === 'string',
      `'${FIELD}' must be a text part { type: 'text', text } (images and audio are not supported)`,
    )
    .transform((p) => (p as { text: string }).text)

  // A call in an assistant turn of the client's history, as OpenAI shapes it.
  const historyCall = z
    .object(
      {
        id: z.string({ error: `'${FIELD}' must be a string` }),
        type: z.literal('function', { error: `'${FIELD}' must be 'function'` }).optional(),
        function: z.object(
          { name: z.string({ error: `'${FIELD}' must be a string` }), arguments: z.string({ error: `'${FIELD}' must be a JSON string` }) },
          { error: `'${FIELD}' must be an object { name, arguments }` },
        ),
      },
      { error: `'${FIELD}' must be an object { id, type, function }` },
    )
    .transform((c) => ({ id: c.id, name: c.function.name, arguments: c.function.arguments }))

  const message = z
    .object(
      {
        role: z.enum(['system', 'developer', 'user', 'assistant', 'tool'], { error: `'${FIELD}' must be 'system', 'developer', 'user', 'assistant' or 'tool'` }),
        // null: an assistant turn that carried tool calls in the client's history.
        content: z.union([z.string(), z.array(textPart), z.null()], {
          error: `'${FIELD}' must be a string or an array of text parts`,
        }),
        tool_calls: z.array(historyCall, { error: `'${FIELD}' must be an array of tool calls` }).nullish(),
        tool_call_id: z.string({ error: `'${FIELD}' must be a string` }).nullish(),
      },
      { error: `'${FIELD}' must be an object { role, content }` },
    )
    .transform((m) => ({
      role: m.role,
      content: Array.isArray(m.content) ? m.content.join('\n') : m.content,
      toolCalls: m.tool_calls ?? undefined,
      toolCallId: m.tool_call_id ?? undefined,
    }))
    .superRefine((m, ctx) => {
      if (m.role === 'tool' && m.toolCallId === undefined) {
        ctx.addIssue({ code: 'custom', path: ['tool_call_id'], message: `'${FIELD}' is required on a tool message: the id of the call it answers` })
      }
      if (m.role === 'assistant') return // the model's own earlier text: only the body limit applies
      const issue = (message: string, code = 'invalid_request') => ctx.addIssue({ code: 'custom', path: ['content'], message, params: { code } })
      if (m.content === null) issue(`'${FIELD}' must be a string or an array of text parts`)
      else if (m.content.length > limits.maxMessageChars) issue(`'${FIELD}' is longer than ${limits.maxMessageChars} characters`, 'message_too_long')
      else if (!noNul(m.content)) issue(NUL_MESSAGE)
    })
    .transform((m): ChatMessage => {
      const out: ChatMessage = { role: m.role === 'developer' ? 'system' : m.role, content: m.content ?? '' }
      if (m.toolCalls) out.toolCalls = m.toolCalls
      if (m.toolCallId !== undefined) out.toolCallId = m.toolCallId
      return out
    })

  // OpenAI's tool definitions; the engine checks names and schemas, naming the field.
  const tool = z
    .object(
      {
        type: z.literal('function', { error: `'${FIELD}' must be 'function'` }),
        function: z.object(
          {
            name: z.string({ error: `'${FIELD}' must be a string` }),
            description: z.string({ error: `'${FIELD}' must be a string` }).nullish(),
            parameters: z.record(z.string(), z.unknown(), { error: `'${FIELD}' must be a JSON Schema object` }).nullish(),
            strict: z.boolean().nullish(),
          },
          { error: `'${FIELD}' must be an object { name, description?, parameters? }` },
        ),
      },
      { error: `'${FIELD}' must be an object { type: 'function', function }` },
    )
    .transform((t): ToolDefinition => ({
      name: t.function.name,
      ...(t.function.description ? { description: t.function.description } : {}),
      ...(t.function.parameters ? { parameters: t.function.parameters } : {}),
    }))
  const toolChoice = z
    .union(
      [
        z.enum(['auto', 'none', 'required']),
        z.object({ type: z.literal('function'), function: z.object({ name: z.string() }) }).transform((c): ToolChoice => ({ name: c.function.name })),
      ],
      { error: "'tool_choice' must be 'auto', 'none', 'required' or { type: 'function', function: { name } }" },
    )
    .nullish()

  const maxMessages = limits.maxHistoryMessages + 2
  const stop = z
    .union([z.string().transform((s) => [s]), z.array(z.string())], { error: "'stop' must be a string or an array of strings" })
    .refine((s) => s.length <= 16 && s.every((x) => x.length > 0), "'stop' must be a string or an array of at most 16 non-empty strings")
    .nullish()

  const responseFormat = z
    .discriminatedUnion(
      'type',
      [
        z.object({ type: z.literal('text') }).transform(() => undefined),
        z.object({ type: z.literal('json_object') }).transform(() => ({ type: 'object' })),
        z
          .object({
            type: z.literal('json_schema'),
            json_schema: z.object(
              { schema: z.record(z.string(), z.unknown(), { error: `'${FIELD}' must be a JSON Schema object` }) },
              { error: `'${FIELD}' must be an object { name, schema }` },
            ),
          })
          .transform((f): object => f.json_schema.schema),
      ],
      { error: "'response_format.type' must be 'text', 'json_object' or 'json_schema'" },
    )
    .nullish()

  const fields = {
    model: z.string({ error: "'model' must be a string" }).nullish(),
    messages: z
      .array(message, { error: "'messages' must be a non-empty array" })
      .min(1, { error: "'messages' must be a non-empty array" })
      .refine((m) => m.length <= maxMessages, withCode('history_too_long', `'messages' has more than ${maxMessages} messages`))
      .refine((m) => m[m.length - 1]?.role !== 'assistant', 'the last message must not be from the assistant (prefill is not supported)'),
    stream: optionalBoolean,
    stream_options: z.object({ include_usage: optionalBoolean }, { error: "'stream_options' must be an object" }).nullish(),
    max_tokens: numberIn(1, Number.MAX_SAFE_INTEGER, true),
    max_completion_tokens: numberIn(1, Number.MAX_SAFE_INTEGER, true),
    temperature: numberIn(0, 2),
    top_p: numberIn(0, 1),
    presence_penalty: numberIn(-2, 2),
    frequency_penalty: numberIn(-2, 2),
    seed: numberIn(Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER, true),
    stop,
    response_format: responseFormat,
    tools: z.array(tool, { error: "'tools' must be an array of { type: 'function', function }" }).nullish(),
    tool_choice: toolChoice,
    parallel_tool_calls: optionalBoolean,
    ...Object.fromEntries(IGNORED_OPENAI_FIELDS.map((f) => [f, z.unknown().optional()])),
    ...Object.fromEntries(Object.entries(UNSUPPORTED_OPENAI_FIELDS).map(([f, rule]) => [f, unsupportedField(f, rule)])),
  }

  return z
    .strictObject(fields, { error: BODY_NOT_OBJECT })
    .superRefine((b, ctx) => {
      // As OpenAI: a choice that asks for a call needs something to call.
      const asksForCall = b.tool_choice === 'required' || (typeof b.tool_choice === 'object' && b.tool_choice !== null)
      if (asksForCall && !(b.tools && b.tools.length > 0)) {
        ctx.addIssue({ code: 'custom', path: ['tool_choice'], message: "'tool_choice' asks for a tool call, but 'tools' is empty" })
      }
    })
    .transform((b): CompletionRequest => {
      const messages = [...b.messages]
      // The service speaks Persian unless the caller brings its own system prompt.
      if (!messages.some((m) => m.role === 'system')) messages.unshift({ role: 'system', content: limits.systemPrompt })
      return {
        model: b.model ?? undefined,
        messages,
        stream: b.stream ?? false,
        includeUsage: b.stream_options?.include_usage ?? false,
        options: {
          maxTokens: b.max_completion_tokens ?? b.max_tokens ?? undefined,
          temperature: b.temperature ?? undefined,
          topP: b.top_p ?? undefined,
          presencePenalty: b.presence_penalty ?? undefined,
          frequencyPenalty: b.frequency_penalty ?? undefined,
          seed: b.seed === null || b.seed === undefined ? undefined : wrapSeed(b.seed),
          stop: b.stop ?? undefined,
          jsonSchema: b.response_format ?? undefined,
          // An empty list (clients often send one) offers nothing to call.
          ...(b.tools && b.tools.length > 0
            ? { tools: b.tools, toolChoice: b.tool_choice ?? undefined, parallelToolCalls: b.parallel_tool_calls ?? undefined }
            : {}),
        },
      }
    })
}

// ---- POST /v1/embeddings, POST /v1/rerank -----------------------------------------------------

/** OpenAI's own bound on inputs per embeddings request. */
export const MAX_EMBEDDING_INPUTS = 2048

export interface EmbeddingsRequest {
  input: string[]
  encodingFormat: 'float' | 'base64'
}

export interface RerankRequest {
  query: string
  documents: string[]
  topN: number | undefined
  returnDocuments: boolean
}

/** Texts to embed or rank: a string or a bounded array of non-empty strings (no token arrays). */
function textList(limits: Limits, field: string) {
  const item = userText(limits, `'${FIELD}' must be a string (token arrays are not supported: send text)`).refine((t) => t !== '', `'${FIELD}' is empty`)
  const list = z
    .array(item, { error: `'${field}' must be a non-empty string or array of strings` })
    .min(1, { error: `'${field}' must be a non-empty string or array of strings` })
    .max(MAX_EMBEDDING_INPUTS, { error: `'${field}' has more than ${MAX_EMBEDDING_INPUTS} items` })
  return z.union([item.transform((t) => [t]), list], { error: `'${field}' must be a non-empty string or array of strings` })
}

function embeddingsSchema(limits: Limits) {
  return z
    .strictObject(
      {
        input: textList(limits, 'input'),
        model: z.string({ error: "'model' must be a string" }).nullish(),
        encoding_format: z.enum(['float', 'base64'], { error: "'encoding_format' must be 'float' or 'base64'" }).nullish(),
        dimensions: z
          .unknown()
          .refine((v) => v === undefined || v === null, withCode('unsupported_parameter', "'dimensions' is not supported: the model's vectors have a fixed length"))
          .optional(),
        ...Object.fromEntries(IGNORED_OPENAI_FIELDS.map((f) => [f, z.unknown().optional()])),
      },
      { error: BODY_NOT_OBJECT },
    )
    .transform((b): EmbeddingsRequest => ({ input: b.input, encodingFormat: b.encoding_format ?? 'float' }))
}

function rerankSchema(limits: Limits) {
  return z
    .strictObject(
      {
        query: userText(limits, "'query' is required and must be a string").refine((q) => q !== '', "'query' must not be empty"),
        documents: textList(limits, 'documents'),
        top_n: numberIn(1, Number.MAX_SAFE_INTEGER, true),
        return_documents: optionalBoolean,
        model: z.string({ error: "'model' must be a string" }).nullish(),
        ...Object.fromEntries(IGNORED_OPENAI_FIELDS.map((f) => [f, z.unknown().optional()])),
      },
      { error: BODY_NOT_OBJECT },
    )
    .transform(
      (b): RerankRequest => ({ query: b.query, documents: b.documents, topN: b.top_n ?? undefined, returnDocuments: b.return_documents ?? false }),
    )
}

// ---- zod issues → the API's error body ---------------------------------------------------------

/** `['messages', 0, 'role']` → `messages[0].role`. */
function fieldPath(path: PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('')
}

function toBadRequest(issue: z.core.$ZodIssue): ApiError {
  if (issue.code === 'unrecognized_keys') {
    const field = fieldPath([...issue.path, issue.keys[0]])
    return badRequest(
      `'${field}' is not a parameter this server knows (ignored as harmless: ${IGNORED_OPENAI_FIELDS.join(', ')})`,
      field,
      'unknown_parameter',
    )
  }
  const field = fieldPath(issue.path)
  const code = (issue as { params?: { code?: string } }).params?.code ?? 'invalid_request'
  return badRequest(issue.message.replaceAll(FIELD, field), field || null, code)
}

/** Parses with a schema; the first problem becomes a 400 naming the field. */
export function parseWith<T>(schema: z.ZodType<T>, body: unknown): T {
  const result = schema.safeParse(body)
  if (result.success) return result.data
  throw toBadRequest(result.error.issues[0])
}

/** The parsers of every endpoint's body, built once for the configured limits. */
export function requestParsers(limits: Limits) {
  const chat = chatSchema(limits)
  const completion = completionSchema(limits)
  const embeddings = embeddingsSchema(limits)
  const rerank = rerankSchema(limits)
  return {
    chat: (body: unknown): ChatRequest => parseWith(chat, body),
    completion: (body: unknown): CompletionRequest => parseWith(completion, body),
    embeddings: (body: unknown): EmbeddingsRequest => parseWith(embeddings, body),
    rerank: (body: unknown): RerankRequest => parseWith(rerank, body),
  }
}
