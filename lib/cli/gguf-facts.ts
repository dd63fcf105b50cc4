// What a GGUF file says about its model, read from the header alone (scripts/gguf.js, the one
// reader and writer of the format here): nothing is loaded, so `inspect` is instant even for
// a model larger than memory.
import * as fs from 'node:fs'
import { GGML_TYPE_NAME, LLAMA_FTYPE_NAME, readGGUFHeader } from '../../scripts/gguf'
import type { GGUFHeader, GGUFValue } from '../../scripts/gguf'

export interface ModelFacts {
  file: string
  fileBytes: number
  ggufVersion: number
  name: string | null
  architecture: string
  parameters: number
  /** The file's quantization (`general.file_type`), else its most common tensor type. */
  quantization: string
  trainedContextLength: number | null
  layers: number
  embeddingLength: number | null
  heads: number | number[] | null
  /** Key and value heads: fewer than `heads` with grouped-query attention; per layer when an array. */
  kvHeads: number | number[] | null
  keyLength: number | null
  valueLength: number | null
  slidingWindow: number | null
  vocabSize: number | null
  tokenizer: string | null
  chatTemplate: string | null
  /**
   * KV-cache bytes one token of context takes in the engine's F16 cache, all layers; null for
   * the families whose cache is not one per layer (see `kvCacheNote`).
   */
  kvBytesPerToken: number | null
  kvCacheNote: string | null
  metadata: Record<string, GGUFValue>
}

/** F16 keys and values: two bytes each. */
const KV_BYTES_PER_ELEMENT = 2
/** llama.cpp rounds each sequence's share of the cache up to a multiple of this many cells. */
const KV_CELL_PADDING = 256

/**
 * The KV cache of `parallel` sequences of `contextSize` tokens, as the engine allocates it
 * and reports it in `ModelInfo.kvCacheBytes`.
 */
export function kvCacheBytes(bytesPerToken: number, contextSize: number, parallel: number): number {
  return bytesPerToken * Math.ceil(contextSize / KV_CELL_PADDING) * KV_CELL_PADDING * parallel
}

function num(v: GGUFValue | undefined): number | null {
  if (typeof v === 'number') return v
  if (typeof v === 'bigint') return Number(v)
  return null
}

function numbers(v: GGUFValue | undefined): number | number[] | null {
  if (Array.isArray(v)) return v.map((x) => num(x) ?? 0)
  return num(v)
}

function perLayer(v: number | number[], layers: number): number[] {
  return Array.isArray(v) ? v : new Array<number>(layers).fill(v)
}

function firstOf(v: number | number[]): number {
  return Array.isArray(v) ? (v[0] ?? 0) : v
}

/** Why a family's cache is not every layer's keys and values, or null when it is. */
function notPerLayerCache(header: GGUFHeader, arch: string): string | null {
  const keys = Object.keys(header.kv)
  if (keys.some((k) => k.startsWith(`${arch}.ssm.`) || k.startsWith(`${arch}.wkv.`) || k.startsWith(`${arch}.shortconv.`))) {
    return 'a recurrent or hybrid model keeps a fixed state, not a cache per token on every layer'
  }
  if (`${arch}.attention.key_length_mla` in header.kv || `${arch}.attention.kv_lora_rank` in header.kv) {
    return 'multi-head latent attention caches a compressed size'
  }
  if (arch === 'gemma3n' || `${arch}.attention.shared_kv_layers` in header.kv) return 'some layers share another layer\'s cache'
  return null
}

/**
 * Bytes per token of context: keys and values of every KV head of every layer, F16. Mirrors
 * the engine's own estimate (src/engine/load/memory.rs): the head size is `key_length` /
 * `value_length` (else `headDim`), the smaller of the full and
 * sliding-window sizes when a model has both, and sliding-window layers count in full (the
 * engine keeps every cell for them so cached prompts can be reused).
 */
function kvBytesPerToken(header: GGUFHeader, arch: string, layers: number, kvHeads: number | number[] | null, headDim: number | null): number | null {
  if (kvHeads === null || headDim === null) return null
  const meta = (key: string) => num(header.kv[`${arch}.${key}`])
  const smaller = (full: string, swa: string) => {
    const size = meta(full) ?? headDim
    const window = meta(swa)
    return window === null ? size : Math.min(size, window)
  }
  const perHead = smaller('attention.key_length', 'attention.key_length_swa') + smaller('attention.value_length', 'attention.value_length_swa')
  const totalKvHeads = perLayer(kvHeads, layers).reduce((a, b) => a + b, 0)
  return totalKvHeads * perHead * KV_BYTES_PER_ELEMENT
}

function quantizationOf(header: GGUFHeader): string {
  const fileType = num(header.kv['general.file_type'])
  if (fileType !== null && LLAMA_FTYPE_NAME[fileType]) return LLAMA_FTYPE_NAME[fileType]
  // No file type: name the tensor type that holds the most weights.
  const byType = new Map<number, number>()
  for (const t of header.tensors) byType.set(t.type, (byType.get(t.type) ?? 0) + t.ne.reduce((a, b) => a * b, 1))
  const [top] = [...byType.entries()].sort((a, b) => b[1] - a[1])
  if (!top) return 'unknown'
  return `${GGML_TYPE_NAME[top[0]] ?? `type ${top[0]}`} (most weights)`
}

export function readModelFacts(file: string): ModelFacts {
  const header = readGGUFHeader(file)
  const kv = header.kv
  const arch = typeof kv['general.architecture'] === 'string' ? (kv['general.architecture'] as string) : 'unknown'
  const meta = (key: string) => kv[`${arch}.${key}`]
  const layers = num(meta('block_count')) ?? 0
  const heads = numbers(meta('attention.head_count'))
  const kvHeads = numbers(meta('attention.head_count_kv')) ?? heads
  const embedding = num(meta('embedding_length'))
  // llama.cpp's head size when the file gives none: the embedding split over the first layer's heads.
  const headDim = embedding !== null && heads !== null ? Math.floor(embedding / Math.max(1, firstOf(heads))) : null
  const tokens = kv['tokenizer.ggml.tokens']
  const note = notPerLayerCache(header, arch)
  const template = kv['tokenizer.chat_template']
  return {
    file,
    fileBytes: fs.statSync(file).size,
    ggufVersion: header.version,
    name: typeof kv['general.name'] === 'string' ? (kv['general.name'] as string) : null,
    architecture: arch,
    parameters: header.tensors.reduce((sum, t) => sum + t.ne.reduce((a, b) => a * b, 1), 0),
    quantization: quantizationOf(header),
    trainedContextLength: num(meta('context_length')),
    layers,
    embeddingLength: embedding,
    heads,
    kvHeads,
    keyLength: num(meta('attention.key_length')) ?? headDim,
    valueLength: num(meta('attention.value_length')) ?? headDim,
    slidingWindow: num(meta('attention.sliding_window')),
    vocabSize: Array.isArray(tokens) ? tokens.length : num(meta('vocab_size')),
    tokenizer: typeof kv['tokenizer.ggml.model'] === 'string' ? (kv['tokenizer.ggml.model'] as string) : null,
    chatTemplate: typeof template === 'string' ? template : null,
    kvBytesPerToken: note ? null : kvBytesPerToken(header, arch, layers, kvHeads, headDim),
    kvCacheNote: note,
    metadata: kv,
  }
}
