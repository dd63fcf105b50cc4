#!/usr/bin/env node
// A small GGUF v3 writer and reader, a safetensors reader, and a converter from a Hugging Face
// BERT sentence-embedding folder (config.json, vocab.txt, tokenizer.json, model.safetensors,
// sentence-transformers pooling config) to the GGUF that llama.cpp loads as architecture `bert`.
// Pure JavaScript: no Python, no torch. The output depends only on the input files, so it is
// byte-for-byte reproducible (fetch-model.js pins its sha256).
//
// The converter writes what llama.cpp's convert_hf_to_gguf.py (BertModel) writes, with the
// weights kept in F32: the same key names, phantom-space vocabulary, token types and tensor
// names (checked against llama.cpp's src/llama-arch.cpp, src/models/bert.cpp, src/llama-vocab.cpp
// and ggml/src/gguf.cpp of the llama-cpp-sys-2 version this project builds).
//
//   node scripts/gguf.js convert-bert <hf-folder> <out.gguf> [--name NAME]
//   node scripts/gguf.js inspect <file.gguf>        # header: KVs (arrays shortened) and tensors
'use strict'

const fs = require('node:fs')
const path = require('node:path')

// ---------------------------------------------------------------------------------------------
// GGUF constants (ggml/include/gguf.h, ggml/include/ggml.h)

const GGUF_MAGIC = 'GGUF'
const GGUF_VERSION = 3
const GGUF_DEFAULT_ALIGNMENT = 32

const T = Object.freeze({
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7,
  STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
})
const TYPE_NAMES = Object.fromEntries(Object.entries(T).map(([k, v]) => [v, k]))

const GGML_TYPE = Object.freeze({ F32: 0, F16: 1 })
const GGML_TYPE_SIZE = { [GGML_TYPE.F32]: 4, [GGML_TYPE.F16]: 2 }

// Names of the tensor types (ggml_type; gaps are types removed from GGUF files) and of the
// whole-file quantizations (llama_ftype, `general.file_type`), for reports.
const GGML_TYPE_NAME = Object.freeze({
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 6: 'Q5_0', 7: 'Q5_1', 8: 'Q8_0', 9: 'Q8_1',
  10: 'Q2_K', 11: 'Q3_K', 12: 'Q4_K', 13: 'Q5_K', 14: 'Q6_K', 15: 'Q8_K', 16: 'IQ2_XXS',
  17: 'IQ2_XS', 18: 'IQ3_XXS', 19: 'IQ1_S', 20: 'IQ4_NL', 21: 'IQ3_S', 22: 'IQ2_S', 23: 'IQ4_XS',
  24: 'I8', 25: 'I16', 26: 'I32', 27: 'I64', 28: 'F64', 29: 'IQ1_M', 30: 'BF16', 34: 'TQ1_0',
  35: 'TQ2_0', 39: 'MXFP4', 40: 'NVFP4', 41: 'Q1_0', 42: 'Q2_0',
})
const LLAMA_FTYPE_NAME = Object.freeze({
  0: 'F32', 1: 'F16', 2: 'Q4_0', 3: 'Q4_1', 7: 'Q8_0', 8: 'Q5_0', 9: 'Q5_1', 10: 'Q2_K',
  11: 'Q3_K_S', 12: 'Q3_K_M', 13: 'Q3_K_L', 14: 'Q4_K_S', 15: 'Q4_K_M', 16: 'Q5_K_S',
  17: 'Q5_K_M', 18: 'Q6_K', 19: 'IQ2_XXS', 20: 'IQ2_XS', 21: 'Q2_K_S', 22: 'IQ3_XS',
  23: 'IQ3_XXS', 24: 'IQ1_S', 25: 'IQ4_NL', 26: 'IQ3_S', 27: 'IQ3_M', 28: 'IQ2_S', 29: 'IQ2_M',
  30: 'IQ4_XS', 31: 'IQ1_M', 32: 'BF16', 36: 'TQ1_0', 37: 'TQ2_0', 38: 'MXFP4_MOE', 39: 'NVFP4',
  40: 'Q1_0', 41: 'Q2_0',
})

// llama.cpp token types (llama_token_type / gguf.TokenType)
const TOKEN_TYPE = Object.freeze({ NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 })
// llama_pooling_type
const POOLING = Object.freeze({ NONE: 0, MEAN: 1, CLS: 2, LAST: 3 })
// llama_ftype
const FTYPE = Object.freeze({ ALL_F32: 0, MOSTLY_F16: 1 })

const pad = (n, a) => Math.ceil(n / a) * a

// ---------------------------------------------------------------------------------------------
// Writer

function ggufString(s) {
  const bytes = Buffer.from(s, 'utf8')
  const head = Buffer.alloc(8)
  head.writeBigUInt64LE(BigInt(bytes.length))
  return Buffer.concat([head, bytes])
}

function scalar(type, v) {
  let b
  switch (type) {
    case T.UINT8: b = Buffer.alloc(1); b.writeUInt8(v); break
    case T.INT8: b = Buffer.alloc(1); b.writeInt8(v); break
    case T.UINT16: b = Buffer.alloc(2); b.writeUInt16LE(v); break
    case T.INT16: b = Buffer.alloc(2); b.writeInt16LE(v); break
    case T.UINT32: b = Buffer.alloc(4); b.writeUInt32LE(v); break
    case T.INT32: b = Buffer.alloc(4); b.writeInt32LE(v); break
    case T.FLOAT32: b = Buffer.alloc(4); b.writeFloatLE(v); break
    case T.BOOL: b = Buffer.alloc(1); b.writeUInt8(v ? 1 : 0); break
    case T.STRING: return ggufString(v)
    case T.UINT64: b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); break
    case T.INT64: b = Buffer.alloc(8); b.writeBigInt64LE(BigInt(v)); break
    case T.FLOAT64: b = Buffer.alloc(8); b.writeDoubleLE(v); break
    default: throw new Error(`unsupported GGUF value type ${type}`)
  }
  return b
}

class GGUFWriter {
  constructor({ alignment = GGUF_DEFAULT_ALIGNMENT } = {}) {
    this.alignment = alignment
    this.kv = new Map() // key -> { type, value, elemType? }
    this.tensors = [] // { name, shape (PyTorch order), type, data: Buffer }
    if (alignment !== GGUF_DEFAULT_ALIGNMENT) this.add('general.alignment', T.UINT32, alignment)
  }

  add(key, type, value) {
    if (this.kv.has(key)) throw new Error(`duplicate GGUF key ${key}`)
    this.kv.set(key, { type, value })
  }

  addArray(key, elemType, values) {
    if (this.kv.has(key)) throw new Error(`duplicate GGUF key ${key}`)
    this.kv.set(key, { type: T.ARRAY, elemType, value: values })
  }

  /** shape is in PyTorch order (outermost first); GGUF stores ne[] innermost first. */
  addTensor(name, shape, type, data) {
    const n = shape.reduce((a, b) => a * b, 1)
    if (data.length !== n * GGML_TYPE_SIZE[type]) {
      throw new Error(`tensor ${name}: ${data.length} bytes for shape [${shape}] of type ${type}`)
    }
    if (this.tensors.some((t) => t.name === name)) throw new Error(`duplicate tensor ${name}`)
    this.tensors.push({ name, shape, type, data })
  }

  header() {
    const parts = []
    const head = Buffer.alloc(24)
    head.write(GGUF_MAGIC, 0, 'latin1')
    head.writeUInt32LE(GGUF_VERSION, 4)
    head.writeBigUInt64LE(BigInt(this.tensors.length), 8)
    head.writeBigUInt64LE(BigInt(this.kv.size), 16)
    parts.push(head)
    for (const [key, { type, value, elemType }] of this.kv) {
      parts.push(ggufString(key), scalar(T.UINT32, type))
      if (type === T.ARRAY) {
        parts.push(scalar(T.UINT32, elemType), scalar(T.UINT64, value.length))
        for (const v of value) parts.push(scalar(elemType, v))
      } else {
        parts.push(scalar(type, value))
      }
    }
    let offset = 0
    for (const t of this.tensors) {
      parts.push(ggufString(t.name), scalar(T.UINT32, t.shape.length))
      for (const d of [...t.shape].reverse()) parts.push(scalar(T.UINT64, d))
      parts.push(scalar(T.UINT32, t.type), scalar(T.UINT64, offset))
      offset += pad(t.data.length, this.alignment)
    }
    const buf = Buffer.concat(parts)
    return Buffer.concat([buf, Buffer.alloc(pad(buf.length, this.alignment) - buf.length)])
  }

  write(file) {
    const fd = fs.openSync(file, 'w')
    try {
      fs.writeSync(fd, this.header())
      for (const t of this.tensors) {
        fs.writeSync(fd, t.data)
        const extra = pad(t.data.length, this.alignment) - t.data.length
        if (extra) fs.writeSync(fd, Buffer.alloc(extra))
      }
    } finally {
      fs.closeSync(fd)
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Reader (header only; enough to inspect and test what the writer produced)

/** A damaged or foreign file: `code` INVALID_MODEL (the command line prints it). */
function invalidModel(message) {
  return Object.assign(new Error(message), { code: 'INVALID_MODEL' })
}

function readGGUFHeader(file) {
  const fd = fs.openSync(file, 'r')
  const fileSize = fs.fstatSync(fd).size
  let buf = Buffer.alloc(0)
  let filePos = 0
  let pos = 0
  const truncated = () => invalidModel(`${file}: truncated GGUF header`)
  const need = (n) => {
    if (pos + n <= buf.length) return
    // A damaged length must fail as a damaged file, not as a huge allocation.
    if (n - (buf.length - pos) > fileSize - filePos) throw truncated()
    const chunk = Buffer.alloc(Math.max(n, 1 << 20))
    const got = fs.readSync(fd, chunk, 0, chunk.length, filePos)
    filePos += got
    buf = Buffer.concat([buf.subarray(pos), chunk.subarray(0, got)])
    pos = 0
    if (buf.length < n) throw truncated()
  }
  let consumed = 0
  const take = (n) => { need(n); const b = buf.subarray(pos, pos + n); pos += n; consumed += n; return b }
  const u32 = () => take(4).readUInt32LE()
  const u64 = () => Number(take(8).readBigUInt64LE())
  const str = () => take(u64()).toString('utf8')
  const val = (type) => {
    switch (type) {
      case T.UINT8: return take(1).readUInt8()
      case T.INT8: return take(1).readInt8()
      case T.UINT16: return take(2).readUInt16LE()
      case T.INT16: return take(2).readInt16LE()
      case T.UINT32: return u32()
      case T.INT32: return take(4).readInt32LE()
      case T.FLOAT32: return take(4).readFloatLE()
      case T.BOOL: return take(1).readUInt8() !== 0
      case T.STRING: return str()
      case T.UINT64: return take(8).readBigUInt64LE()
      case T.INT64: return take(8).readBigInt64LE()
      case T.FLOAT64: return take(8).readDoubleLE()
      case T.ARRAY: {
        const et = u32()
        const n = u64()
        if (n > fileSize) throw truncated()
        // Grown, not preallocated: a damaged count fails as a truncated file on the way.
        const out = []
        for (let i = 0; i < n; i++) out.push(val(et))
        return out
      }
      default: throw invalidModel(`${file}: unknown GGUF value type ${type}`)
    }
  }
  try {
    if (fileSize < 4 || take(4).toString('latin1') !== GGUF_MAGIC) throw invalidModel(`${file} is not a GGUF file`)
    const version = u32()
    // Version 1 counted with 32-bit integers; llama.cpp reads 2 and 3.
    if (version !== 2 && version !== GGUF_VERSION) throw invalidModel(`${file}: GGUF version ${version} is not supported`)
    const nTensors = u64()
    const nKV = u64()
    const kv = {}
    const kvTypes = {}
    for (let i = 0; i < nKV; i++) {
      const key = str()
      const type = u32()
      kvTypes[key] = type
      kv[key] = val(type)
    }
    const tensors = []
    for (let i = 0; i < nTensors; i++) {
      const name = str()
      const nd = u32()
      const ne = []
      for (let d = 0; d < nd; d++) ne.push(u64())
      tensors.push({ name, ne, type: u32(), offset: u64() })
    }
    const alignment = kv['general.alignment'] ?? GGUF_DEFAULT_ALIGNMENT
    return { version, kv, kvTypes, tensors, dataOffset: pad(consumed, alignment) }
  } finally {
    fs.closeSync(fd)
  }
}

// ---------------------------------------------------------------------------------------------
// safetensors: 8-byte little-endian header length, JSON header, then the raw little-endian data.

const ST_DTYPE_SIZE = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 }

function readSafetensors(file) {
  const buf = fs.readFileSync(file)
  if (buf.length < 8) throw new Error(`${file}: too short for safetensors`)
  const n = Number(buf.readBigUInt64LE(0))
  if (8 + n > buf.length) throw new Error(`${file}: header length ${n} beyond the end of the file`)
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'))
  const base = 8 + n
  const tensors = new Map()
  for (const [name, info] of Object.entries(header)) {
    if (name === '__metadata__') continue
    const { dtype, shape, data_offsets: [begin, end] } = info
    const size = ST_DTYPE_SIZE[dtype]
    if (!size) throw new Error(`${file}: tensor ${name} has unsupported dtype ${dtype}`)
    const count = shape.reduce((a, b) => a * b, 1)
    if (end - begin !== count * size || base + end > buf.length) {
      throw new Error(`${file}: tensor ${name} has inconsistent offsets`)
    }
    tensors.set(name, { dtype, shape, data: buf.subarray(base + begin, base + end) })
  }
  return { tensors, metadata: header.__metadata__ || {} }
}

function halfToFloat(h) {
  const s = h & 0x8000 ? -1 : 1
  const e = (h >> 10) & 0x1f
  const m = h & 0x3ff
  if (e === 0) return s * m * 2 ** -24
  if (e === 31) return m ? NaN : s * Infinity
  return s * (1 + m / 1024) * 2 ** (e - 15)
}

/** Little-endian F32 bytes of a safetensors tensor (F32 as is; F16 and BF16 widened exactly). */
function toF32(t, name) {
  if (t.dtype === 'F32') return t.data
  const n = t.data.length / 2
  const out = Buffer.alloc(n * 4)
  for (let i = 0; i < n; i++) {
    const h = t.data.readUInt16LE(i * 2)
    if (t.dtype === 'BF16') out.writeUInt32LE((h << 16) >>> 0, i * 4)
    else if (t.dtype === 'F16') out.writeFloatLE(halfToFloat(h), i * 4)
    else throw new Error(`tensor ${name}: cannot convert ${t.dtype} to F32`)
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// BERT (Hugging Face BertModel / sentence-transformers) -> GGUF, as convert_hf_to_gguf.py does

/** GGUF tensor name for a Hugging Face BERT tensor name; null for tensors llama.cpp does not use. */
function bertTensorName(hfName) {
  let name = hfName.replace(/^0\./, '').replace(/^auto_model\./, '').replace(/^bert\./, '')
  if (name.endsWith('.gamma')) name = `${name.slice(0, -6)}.weight`
  if (name.endsWith('.beta')) name = `${name.slice(0, -5)}.bias`
  if (name === 'embeddings.position_ids' || name.startsWith('pooler.') || name.startsWith('cls.')) return null
  const fixed = {
    'embeddings.word_embeddings.weight': 'token_embd.weight',
    'embeddings.position_embeddings.weight': 'position_embd.weight',
    'embeddings.token_type_embeddings.weight': 'token_types.weight',
    'embeddings.LayerNorm.weight': 'token_embd_norm.weight',
    'embeddings.LayerNorm.bias': 'token_embd_norm.bias',
  }
  if (fixed[name]) return fixed[name]
  const m = /^encoder\.layer\.(\d+)\.(.+)\.(weight|bias)$/.exec(name)
  if (m) {
    const block = {
      'attention.self.query': 'attn_q',
      'attention.self.key': 'attn_k',
      'attention.self.value': 'attn_v',
      'attention.output.dense': 'attn_output',
      'attention.output.LayerNorm': 'attn_output_norm',
      'intermediate.dense': 'ffn_up',
      'output.dense': 'ffn_down',
      'output.LayerNorm': 'layer_output_norm',
    }[m[2]]
    if (block) return `blk.${m[1]}.${block}.${m[3]}`
  }
  throw new Error(`cannot map BERT tensor ${hfName} to a llama.cpp tensor name`)
}

function readJSON(file, fallback) {
  if (!fs.existsSync(file)) {
    if (fallback !== undefined) return fallback
    throw new Error(`missing ${file}`)
  }
  return JSON.parse(fs.readFileSync(file, 'utf8'))
}

/** llama_pooling_type from the sentence-transformers modules.json / Pooling config, or null. */
function sentenceTransformersPooling(dir) {
  const modules = readJSON(path.join(dir, 'modules.json'), [])
  const mod = modules.find((m) => String(m.type).endsWith('Pooling'))
  if (!mod) return null
  const cfg = readJSON(path.join(dir, mod.path, 'config.json'))
  if (cfg.pooling_mode_mean_tokens) return POOLING.MEAN
  if (cfg.pooling_mode_cls_token) return POOLING.CLS
  if (cfg.pooling_mode_lasttoken) return POOLING.LAST
  const byName = { mean: POOLING.MEAN, cls: POOLING.CLS, lasttoken: POOLING.LAST }
  if (cfg.pooling_mode in byName) return byName[cfg.pooling_mode]
  throw new Error('only MEAN, CLS and LAST pooling are supported')
}

/**
 * Converts the BERT model in `dir` to `outFile` (F32 weights). Returns a summary.
 * Needs config.json, vocab.txt and model.safetensors; reads tokenizer.json, tokenizer_config.json,
 * special_tokens_map.json and modules.json when present.
 */
function convertBert(dir, outFile, { name } = {}) {
  const cfg = readJSON(path.join(dir, 'config.json'))
  if (cfg.model_type !== 'bert') throw new Error(`${dir}: model_type is ${cfg.model_type}, not bert`)
  const nEmbd = cfg.hidden_size
  const nLayer = cfg.num_hidden_layers
  const nHead = cfg.num_attention_heads
  const nFF = cfg.intermediate_size
  const nCtx = cfg.max_position_embeddings
  const nTypes = cfg.type_vocab_size ?? 1
  if (cfg.position_embedding_type && cfg.position_embedding_type !== 'absolute') {
    throw new Error(`position_embedding_type ${cfg.position_embedding_type} is not supported`)
  }
  if (cfg.hidden_act && cfg.hidden_act !== 'gelu') throw new Error(`hidden_act ${cfg.hidden_act} is not supported`)

  // Vocabulary: vocab.txt, one token a line, the line number is the id.
  const vocab = fs.readFileSync(path.join(dir, 'vocab.txt'), 'utf8').split('\n').map((l) => l.replace(/\r$/, ''))
  if (vocab[vocab.length - 1] === '') vocab.pop()
  const nVocab = cfg.vocab_size ?? vocab.length
  if (vocab.length > nVocab) throw new Error(`vocab.txt has ${vocab.length} tokens, config says ${nVocab}`)

  const tokJson = readJSON(path.join(dir, 'tokenizer.json'), null)
  const tokCfg = readJSON(path.join(dir, 'tokenizer_config.json'), {})
  const specialMap = readJSON(path.join(dir, 'special_tokens_map.json'), {})
  const tokenText = (v) => (v && typeof v === 'object' ? v.content : v)
  const special = (k, dflt) => tokenText(tokCfg[`${k}_token`]) ?? tokenText(specialMap[`${k}_token`]) ?? dflt

  // Token types as get_vocab_base() assigns them: the tokenizer's added tokens that are special
  // (for BERT: [PAD] [UNK] [CLS] [SEP] [MASK]) are CONTROL, the rest NORMAL, ids without a token UNUSED.
  const controlIds = new Set()
  if (tokJson) {
    for (const t of tokJson.added_tokens || []) {
      if (t.special || /^\[.*\]$|^<.*>$/.test(t.content)) controlIds.add(t.id)
      else throw new Error(`non-special added token ${t.content} is not supported`)
    }
  } else {
    for (const k of ['pad', 'unk', 'cls', 'sep', 'mask']) {
      const id = vocab.indexOf(special(k, `[${k.toUpperCase()}]`))
      if (id >= 0) controlIds.add(id)
    }
  }
  const tokens = []
  const toktypes = []
  for (let i = 0; i < nVocab; i++) {
    if (i >= vocab.length) {
      tokens.push(`[PAD${i}]`)
      toktypes.push(TOKEN_TYPE.UNUSED)
    } else if (controlIds.has(i)) {
      tokens.push(vocab[i]) // control tokens keep their text
      toktypes.push(TOKEN_TYPE.CONTROL)
    } else {
      // llama.cpp's WPM tokenizer works on "phantom space" words: a word start carries U+2581,
      // a continuation piece ("##x") loses its "##".
      tokens.push(vocab[i].startsWith('##') ? vocab[i].slice(2) : `\u2581${vocab[i]}`)
      toktypes.push(TOKEN_TYPE.NORMAL)
    }
  }
  const idOf = (k) => {
    const text = special(k, `[${k.toUpperCase()}]`)
    const id = vocab.indexOf(text)
    if (id < 0) throw new Error(`special token ${text} is not in vocab.txt`)
    return id
  }

  let lowercase = tokCfg.do_lower_case
  let stripAccents = null
  if (tokJson && tokJson.normalizer && tokJson.normalizer.type === 'BertNormalizer') {
    lowercase = tokJson.normalizer.lowercase
    stripAccents = tokJson.normalizer.strip_accents ?? null
  }

  const pooling = sentenceTransformersPooling(dir)

  const w = new GGUFWriter()
  const arch = 'bert'
  w.add('general.architecture', T.STRING, arch)
  w.add('general.type', T.STRING, 'model')
  w.add('general.name', T.STRING, name || path.basename(dir))
  w.add(`${arch}.block_count`, T.UINT32, nLayer)
  w.add(`${arch}.context_length`, T.UINT32, nCtx)
  w.add(`${arch}.embedding_length`, T.UINT32, nEmbd)
  w.add(`${arch}.feed_forward_length`, T.UINT32, nFF)
  w.add(`${arch}.attention.head_count`, T.UINT32, nHead)
  w.add(`${arch}.attention.layer_norm_epsilon`, T.FLOAT32, cfg.layer_norm_eps ?? 1e-12)
  w.add('general.file_type', T.UINT32, FTYPE.ALL_F32)
  w.add(`${arch}.attention.causal`, T.BOOL, false)
  if (pooling !== null) w.add(`${arch}.pooling_type`, T.UINT32, pooling)
  w.add('tokenizer.ggml.token_type_count', T.UINT32, nTypes)
  w.add('tokenizer.ggml.model', T.STRING, 'bert')
  // The pre-tokenizer name convert_hf_to_gguf.py gives the bert-base-uncased WordPiece vocabulary
  // (llama.cpp reads tokenizer.ggml.pre for BPE vocabularies only).
  w.add('tokenizer.ggml.pre', T.STRING, 'bert-bge')
  w.addArray('tokenizer.ggml.tokens', T.STRING, tokens)
  w.addArray('tokenizer.ggml.token_type', T.INT32, toktypes)
  if (typeof lowercase === 'boolean') w.add('tokenizer.ggml.normalizer.lowercase', T.BOOL, lowercase)
  if (typeof stripAccents === 'boolean') w.add('tokenizer.ggml.normalizer.strip_accents', T.BOOL, stripAccents)
  // gguf.SpecialVocab: no bos/eos in a BERT tokenizer config, so bos = [CLS], eos = [SEP].
  w.add('tokenizer.ggml.bos_token_id', T.UINT32, idOf('cls'))
  w.add('tokenizer.ggml.eos_token_id', T.UINT32, idOf('sep'))
  w.add('tokenizer.ggml.unknown_token_id', T.UINT32, idOf('unk'))
  w.add('tokenizer.ggml.seperator_token_id', T.UINT32, idOf('sep')) // sic: llama.cpp's key
  w.add('tokenizer.ggml.padding_token_id', T.UINT32, idOf('pad'))
  w.add('tokenizer.ggml.cls_token_id', T.UINT32, idOf('cls'))
  w.add('tokenizer.ggml.mask_token_id', T.UINT32, idOf('mask'))
  // TemplateProcessing "[CLS] $A [SEP]" / "[CLS] $A [SEP] $B [SEP]": add bos and eos, no extra sep.
  w.add('tokenizer.ggml.add_bos_token', T.BOOL, true)
  w.add('tokenizer.ggml.add_eos_token', T.BOOL, true)
  w.add('tokenizer.ggml.add_sep_token', T.BOOL, false)
  w.add('general.quantization_version', T.UINT32, 2)

  const st = readSafetensors(path.join(dir, 'model.safetensors'))
  const expected = new Map([
    ['token_embd.weight', [nVocab, nEmbd]],
    ['position_embd.weight', [nCtx, nEmbd]],
    ['token_types.weight', [nTypes, nEmbd]],
    ['token_embd_norm.weight', [nEmbd]],
    ['token_embd_norm.bias', [nEmbd]],
  ])
  for (let i = 0; i < nLayer; i++) {
    for (const t of ['attn_q', 'attn_k', 'attn_v', 'attn_output']) {
      expected.set(`blk.${i}.${t}.weight`, [nEmbd, nEmbd])
      expected.set(`blk.${i}.${t}.bias`, [nEmbd])
    }
    for (const t of ['attn_output_norm', 'layer_output_norm']) {
      expected.set(`blk.${i}.${t}.weight`, [nEmbd])
      expected.set(`blk.${i}.${t}.bias`, [nEmbd])
    }
    expected.set(`blk.${i}.ffn_up.weight`, [nFF, nEmbd])
    expected.set(`blk.${i}.ffn_up.bias`, [nFF])
    expected.set(`blk.${i}.ffn_down.weight`, [nEmbd, nFF])
    expected.set(`blk.${i}.ffn_down.bias`, [nEmbd])
  }
  // Sorted by source name, as convert_hf_to_gguf.py iterates safetensors.
  for (const hfName of [...st.tensors.keys()].sort()) {
    const gName = bertTensorName(hfName)
    if (gName === null) continue
    const t = st.tensors.get(hfName)
    const shape = expected.get(gName)
    if (!shape) throw new Error(`unexpected tensor ${hfName} (${gName})`)
    if (shape.join() !== t.shape.join()) {
      throw new Error(`tensor ${hfName} has shape [${t.shape}], expected [${shape}]`)
    }
    w.addTensor(gName, t.shape, GGML_TYPE.F32, toF32(t, hfName))
    expected.delete(gName)
  }
  if (expected.size) throw new Error(`model.safetensors lacks ${[...expected.keys()].join(', ')}`)

  w.write(outFile)
  return { tensors: w.tensors.length, kv: w.kv.size, vocab: nVocab, pooling }
}

module.exports = {
  GGUFWriter, readGGUFHeader, readSafetensors, convertBert, bertTensorName,
  GGUF_TYPE: T, GGML_TYPE, GGML_TYPE_NAME, LLAMA_FTYPE_NAME, TOKEN_TYPE, POOLING,
}

function main() {
  const [cmd, ...args] = process.argv.slice(2)
  if (cmd === 'convert-bert' && args.length >= 2) {
    const nameAt = args.indexOf('--name')
    const name = nameAt >= 0 ? args.splice(nameAt, 2)[1] : undefined
    const summary = convertBert(args[0], args[1], { name })
    process.stderr.write(`[gguf] wrote ${args[1]}: ${JSON.stringify(summary)}\n`)
  } else if (cmd === 'inspect' && args.length === 1) {
    const h = readGGUFHeader(args[0])
    console.log(`GGUF v${h.version}, ${h.tensors.length} tensors, data at ${h.dataOffset}`)
    for (const [k, v] of Object.entries(h.kv)) {
      const shown = Array.isArray(v)
        ? `[${v.slice(0, 8).map((x) => JSON.stringify(x)).join(', ')}${v.length > 8 ? `, … (${v.length})` : ''}]`
        : JSON.stringify(typeof v === 'bigint' ? String(v) : v)
      console.log(`  ${k} (${TYPE_NAMES[h.kvTypes[k]]}) = ${shown}`)
    }
    for (const t of h.tensors) console.log(`  ${t.name} ne=[${t.ne}] type=${t.type} offset=${t.offset}`)
  } else {
    process.stderr.write('usage: gguf.js convert-bert <hf-folder> <out.gguf> [--name NAME] | inspect <file.gguf>\n')
    process.exit(2)
  }
}

if (require.main === module) main()
