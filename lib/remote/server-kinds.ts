// What differs between the OpenAI-compatible servers a remote engine talks to: the names of
// the sampling fields outside OpenAI's own, how a grammar is sent, and which extra endpoints
// exist. One table, so a new kind of server is one entry.
import type * as binding from '../../binding'
import { invalid } from '../errors'

/** The kinds of server a remote engine knows; `openai` is any other OpenAI-compatible one. */
export type ServerKind = 'llama-server' | 'vllm' | 'openai'

export const SERVER_KINDS: readonly ServerKind[] = ['llama-server', 'vllm', 'openai']

interface KindTraits {
  /** Readiness probe: 200 when the server can take requests. */
  healthPath: string
  /** Field names for the samplers OpenAI lacks; null: the server has no such option. */
  topK: string | null
  minP: string | null
  repeatPenalty: string | null
  /** How a GBNF grammar is sent; null: not supported. */
  grammar: ((gbnf: string) => Record<string, unknown>) | null
  /** llama-server's `cache_prompt`. */
  cachePrompt: boolean
  /** POST /tokenize, /detokenize (and /apply-template for chats) are served. */
  tokenizer: 'llama-server' | 'vllm' | null
  /** GET /slots lists the slots and whether each is busy. */
  slots: boolean
}

const TRAITS: Readonly<Record<ServerKind, KindTraits>> = {
  'llama-server': {
    healthPath: '/health',
    topK: 'top_k',
    minP: 'min_p',
    repeatPenalty: 'repeat_penalty',
    grammar: (gbnf) => ({ grammar: gbnf }),
    cachePrompt: true,
    tokenizer: 'llama-server',
    slots: true,
  },
  vllm: {
    healthPath: '/health',
    topK: 'top_k',
    minP: 'min_p',
    repeatPenalty: 'repetition_penalty',
    grammar: (gbnf) => ({ guided_grammar: gbnf }),
    cachePrompt: false,
    tokenizer: 'vllm',
    slots: false,
  },
  openai: {
    healthPath: '/v1/models',
    topK: null,
    minP: null,
    repeatPenalty: null,
    grammar: null,
    cachePrompt: false,
    tokenizer: null,
    slots: false,
  },
}

export function traitsOf(kind: ServerKind): KindTraits {
  return TRAITS[kind]
}

/** The kind `/v1/models` reveals: llama-server and vLLM name themselves in `owned_by`. */
export function detectKind(models: unknown): ServerKind {
  const data = (models as { data?: unknown } | null)?.data
  const first = Array.isArray(data) ? (data[0] as { owned_by?: unknown } | undefined) : undefined
  const owner = first && typeof first.owned_by === 'string' ? first.owned_by.toLowerCase() : ''
  if (owner === 'llamacpp' || owner === 'llama.cpp') return 'llama-server'
  if (owner === 'vllm') return 'vllm'
  return 'openai'
}

/**
 * The JSON body of a chat or text completion request. `native` holds options already read
 * and checked by the same code as a local engine's; options the server cannot honour are
 * refused rather than dropped, so a result never silently differs from what was asked.
 */
export function completionBody(
  kind: ServerKind,
  model: string | null,
  input: string | binding.ChatMessage[],
  native: binding.GenerateOptions,
  stream: boolean,
  backend: string,
): Record<string, unknown> {
  const traits = TRAITS[kind]
  const body: Record<string, unknown> = {}
  if (model !== null) body.model = model
  if (typeof input === 'string') body.prompt = input
  else body.messages = input.map((m) => ({ role: m.role, content: m.content }))
  if (native.maxTokens !== undefined) body.max_tokens = native.maxTokens
  if (native.temperature !== undefined) body.temperature = native.temperature
  if (native.topP !== undefined) body.top_p = native.topP
  if (native.frequencyPenalty !== undefined) body.frequency_penalty = native.frequencyPenalty
  if (native.presencePenalty !== undefined) body.presence_penalty = native.presencePenalty
  if (native.seed !== undefined) body.seed = native.seed
  if (native.stop !== undefined && native.stop.length > 0) body.stop = native.stop
  const lacking = (option: string) => invalid(`${option} is not supported by backend ${backend} (an OpenAI-compatible server of kind '${kind}'); leave it unset`)
  const samplers: Array<[keyof binding.GenerateOptions, string | null]> = [
    ['topK', traits.topK],
    ['minP', traits.minP],
    ['repeatPenalty', traits.repeatPenalty],
  ]
  for (const [option, field] of samplers) {
    const value = native[option]
    if (value === undefined) continue
    if (field === null) throw lacking(option)
    body[field] = value
  }
  // Tool calls and reasoning run through the local engine's chat formats; over a remote server
  // they are refused rather than silently dropped.
  for (const option of ['tools', 'toolChoice', 'parallelToolCalls', 'reasoning', 'reasoningBudget'] as const) {
    if (native[option] !== undefined) throw invalid(`${option} is not supported over remote engines yet (backend ${backend}); leave it unset`)
  }
  if (typeof input !== 'string' && input.some((m) => m.role === 'tool' || (m.toolCalls?.length ?? 0) > 0)) {
    throw invalid(`tool messages are not supported over remote engines yet (backend ${backend})`)
  }
  if (native.grammar !== undefined) {
    if (!traits.grammar) throw lacking('grammar')
    Object.assign(body, traits.grammar(native.grammar))
  }
  if (native.jsonSchema !== undefined) {
    let schema: unknown
    try {
      schema = JSON.parse(native.jsonSchema)
    } catch (err) {
      throw invalid(`jsonSchema is not valid JSON: ${(err as Error).message}`)
    }
    if (!schema || typeof schema !== 'object') throw invalid('jsonSchema must describe a JSON Schema object')
    body.response_format = { type: 'json_schema', json_schema: { name: 'output', schema, strict: true } }
  }
  if (traits.cachePrompt && native.cachePrompt !== undefined) body.cache_prompt = native.cachePrompt
  if (stream) {
    body.stream = true
    body.stream_options = { include_usage: true }
  }
  return body
}
