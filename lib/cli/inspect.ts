// `napi-llama inspect <model>`: what a GGUF file holds and what it needs, from its header
// alone, and settings to start from on this machine.
import type { CommandSpec, ParsedCommand } from './args'
import { flag } from './args'
import { CliError } from './cli-error'
import { formatBytes, formatCount, table } from './format'
import { readModelFacts } from './gguf-facts'
import type { ModelFacts } from './gguf-facts'
import { MODEL_OPERAND_NOTE, resolveModel } from './models'
import { recommend, thisMachine } from './recommend'
import type { Machine, Recommendation } from './recommend'

export const spec: CommandSpec = {
  name: 'inspect',
  operands: '<model>',
  minOperands: 1,
  maxOperands: 1,
  brief: 'GGUF metadata, KV-cache bytes per token, settings for this machine',
  summary:
    'Show what a GGUF model file holds, without loading it: architecture, parameters, quantization, context length, layers and heads, the chat template, the KV-cache bytes per token of context, and the threads, parallel and contextSize to start from on this machine.',
  options: {
    template: { type: 'boolean', description: 'print the chat template alone, exactly as the file has it (the report shortens it)' },
    metadata: { type: 'boolean', description: 'also list every metadata key (long arrays shortened)' },
    json: { type: 'boolean', description: 'print one JSON object instead (the whole template and all metadata in it)' },
  },
  notes: [MODEL_OPERAND_NOTE],
}

/** Templates and metadata longer than this are shortened unless asked for in full. */
const SHORT_TEXT = 240
const SHORT_ARRAY = 8

function shortened(text: string): string {
  const oneLine = text.replace(/\n/g, '\\n')
  return oneLine.length > SHORT_TEXT ? `${oneLine.slice(0, SHORT_TEXT)}… (${text.length} characters; --template prints it)` : oneLine
}

function jsonSafe(value: unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : String(value)
  if (Array.isArray(value)) return value.map(jsonSafe)
  return value
}

function shownValue(value: unknown): string {
  if (Array.isArray(value)) {
    const head = value.slice(0, SHORT_ARRAY).map((v) => JSON.stringify(jsonSafe(v)))
    return `[${head.join(', ')}${value.length > SHORT_ARRAY ? `, … ${value.length} items` : ''}]`
  }
  const text = JSON.stringify(jsonSafe(value)) ?? String(value)
  return text.length > SHORT_TEXT ? `${text.slice(0, SHORT_TEXT)}…` : text
}

function heads(facts: ModelFacts): string {
  const show = (v: number | number[] | null) => (Array.isArray(v) ? `per layer ${shownValue(v)}` : String(v ?? '?'))
  const head = facts.keyLength === facts.valueLength ? `head size ${facts.keyLength ?? '?'}` : `key size ${facts.keyLength ?? '?'}, value size ${facts.valueLength ?? '?'}`
  return `${show(facts.heads)} (KV heads ${show(facts.kvHeads)}; ${head})`
}

function report(facts: ModelFacts, machine: Machine, advice: Recommendation, allMetadata: boolean): string {
  const kv = facts.kvBytesPerToken === null ? `n/a: ${facts.kvCacheNote ?? 'the header lacks the head counts'}` : `${facts.kvBytesPerToken} bytes per token (${formatBytes(facts.kvBytesPerToken * 1024)} per 1024 tokens; F16 keys and values)`
  const rows: Array<[string, string]> = [
    ['file', `${facts.file} (${formatBytes(facts.fileBytes)}, GGUF v${facts.ggufVersion})`],
    ['name', facts.name ?? '(none)'],
    ['architecture', facts.architecture],
    ['parameters', `${formatCount(facts.parameters)} (${facts.parameters})`],
    ['quantization', facts.quantization],
    ['context length', facts.trainedContextLength === null ? '?' : `${facts.trainedContextLength} tokens (trained)${facts.slidingWindow ? `; sliding window ${facts.slidingWindow}` : ''}`],
    ['layers', String(facts.layers)],
    ['embedding', String(facts.embeddingLength ?? '?')],
    ['heads', heads(facts)],
    ['vocabulary', `${facts.vocabSize ?? '?'} tokens${facts.tokenizer ? ` (${facts.tokenizer})` : ''}`],
    ['KV cache', kv],
    ['chat template', facts.chatTemplate === null ? '(none in the file: the engine falls back to a built-in format)' : shortened(facts.chatTemplate)],
  ]
  let out = table(rows)
  const advised: Array<[string, string]> = [
    ['threads', String(advice.threads)],
    ['parallel', String(advice.parallel)],
    ['contextSize', `${advice.contextSize}${advice.kvCacheBytes !== null ? ` (KV cache ${formatBytes(advice.kvCacheBytes)} for ${advice.parallel} × ${advice.contextSize} tokens)` : ''}`],
  ]
  out += `\nrecommended on this machine (${machine.cores} cores, ${formatBytes(machine.freeMemoryBytes)} free of ${formatBytes(machine.totalMemoryBytes)}):\n`
  out += table(advised, '  ')
  for (const note of advice.notes) out += `  note: ${note}\n`
  if (allMetadata) {
    out += '\nmetadata:\n'
    out += table(Object.entries(facts.metadata).map(([k, v]) => [k, shownValue(v)]), '  ')
  }
  return out
}

function asJson(facts: ModelFacts, machine: Machine, advice: Recommendation): string {
  const { metadata, ...fields } = facts
  const shown = Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, Array.isArray(v) && v.length > SHORT_ARRAY ? { type: 'array', length: v.length } : jsonSafe(v)]))
  return `${JSON.stringify({ ...fields, recommended: { ...advice, machine }, metadata: shown }, null, 2)}\n`
}

export async function run({ values, operands }: ParsedCommand): Promise<number> {
  const file = resolveModel(operands[0])
  let facts: ModelFacts
  try {
    facts = readModelFacts(file)
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown }
    if (e.code === 'INVALID_MODEL') throw new CliError('INVALID_MODEL', String(e.message))
    throw err
  }
  if (flag(values, 'template')) {
    if (facts.chatTemplate === null) process.stderr.write(`${file} has no chat template: the engine falls back to a built-in format\n`)
    else process.stdout.write(facts.chatTemplate)
    return 0
  }
  const machine = thisMachine()
  const advice = recommend({ weightsBytes: facts.fileBytes, trainedContextLength: facts.trainedContextLength, kvBytesPerToken: facts.kvBytesPerToken }, machine)
  process.stdout.write(flag(values, 'json') ? asJson(facts, machine, advice) : report(facts, machine, advice, flag(values, 'metadata')))
  return 0
}
