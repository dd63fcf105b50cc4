// Reads the scalar metadata of a GGUF file's header (no tensors), enough to size the KV cache
// for `detect-hardware`'s context recommendation. Arrays (the vocabulary) are skipped.
import fs from 'node:fs'

type Scalar = number | bigint | string | boolean

const SCALAR_SIZES: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 }
const STRING = 8
const ARRAY = 9

class Reader {
  private offset = 0
  private buffer = Buffer.alloc(0)
  private fileOffset = 0

  constructor(private readonly fd: number) {}

  /** Makes `n` bytes available at `offset`, reading more of the file as needed. */
  private need(n: number): void {
    if (this.offset + n <= this.buffer.length) return
    const rest = this.buffer.subarray(this.offset)
    const chunk = Buffer.alloc(Math.max(n, 1 << 20))
    const read = fs.readSync(this.fd, chunk, 0, chunk.length, this.fileOffset)
    this.fileOffset += read
    this.buffer = Buffer.concat([rest, chunk.subarray(0, read)])
    this.offset = 0
    if (this.buffer.length < n) throw new Error('unexpected end of GGUF header')
  }

  u32(): number {
    this.need(4)
    const v = this.buffer.readUInt32LE(this.offset)
    this.offset += 4
    return v
  }

  u64(): bigint {
    this.need(8)
    const v = this.buffer.readBigUInt64LE(this.offset)
    this.offset += 8
    return v
  }

  string(): string {
    const length = Number(this.u64())
    if (length > 1 << 24) throw new Error('GGUF string too long')
    this.need(length)
    const v = this.buffer.toString('utf8', this.offset, this.offset + length)
    this.offset += length
    return v
  }

  skip(n: number): void {
    while (n > 0) {
      const step = Math.min(n, 1 << 20)
      this.need(step)
      this.offset += step
      n -= step
    }
  }

  scalar(type: number): Scalar {
    const size = SCALAR_SIZES[type]
    this.need(size)
    const b = this.buffer
    const o = this.offset
    this.offset += size
    switch (type) {
      case 0: return b.readUInt8(o)
      case 1: return b.readInt8(o)
      case 2: return b.readUInt16LE(o)
      case 3: return b.readInt16LE(o)
      case 4: return b.readUInt32LE(o)
      case 5: return b.readInt32LE(o)
      case 6: return b.readFloatLE(o)
      case 7: return b.readUInt8(o) !== 0
      case 10: return b.readBigUInt64LE(o)
      case 11: return b.readBigInt64LE(o)
      default: return b.readDoubleLE(o)
    }
  }
}

/** The header's key/value metadata, arrays left out. Throws on a file that is not GGUF v2/v3. */
export function readGgufMetadata(file: string): Map<string, Scalar> {
  const fd = fs.openSync(file, 'r')
  try {
    const r = new Reader(fd)
    if (r.u32() !== 0x46554747) throw new Error(`${file} is not a GGUF file`)
    const version = r.u32()
    if (version < 2) throw new Error(`GGUF version ${version} is not supported`)
    r.u64() // tensor count
    const count = Number(r.u64())
    const metadata = new Map<string, Scalar>()
    for (let i = 0; i < count; i++) {
      const key = r.string()
      const type = r.u32()
      if (type === STRING) metadata.set(key, r.string())
      else if (type === ARRAY) {
        const itemType = r.u32()
        const items = Number(r.u64())
        if (itemType === STRING) for (let j = 0; j < items; j++) r.skip(Number(r.u64()))
        else if (SCALAR_SIZES[itemType]) r.skip(items * SCALAR_SIZES[itemType])
        else throw new Error(`GGUF key ${key}: unsupported array type ${itemType}`)
      } else if (SCALAR_SIZES[type]) metadata.set(key, r.scalar(type))
      else throw new Error(`GGUF key ${key}: unknown type ${type}`)
    }
    return metadata
  } finally {
    fs.closeSync(fd)
  }
}

/** KV-cache bytes per token of context (f16 keys and values), or null if the header lacks the sizes. */
export function kvBytesPerToken(metadata: Map<string, Scalar>): number | null {
  const arch = metadata.get('general.architecture')
  if (typeof arch !== 'string') return null
  const get = (key: string) => {
    const v = metadata.get(`${arch}.${key}`)
    return typeof v === 'number' || typeof v === 'bigint' ? Number(v) : undefined
  }
  const layers = get('block_count')
  const heads = get('attention.head_count')
  const kvHeads = get('attention.head_count_kv') ?? heads
  const embedding = get('embedding_length')
  const headDim = heads && embedding ? embedding / heads : undefined
  const keyLength = get('attention.key_length') ?? headDim
  const valueLength = get('attention.value_length') ?? headDim
  if (!layers || !kvHeads || !keyLength || !valueLength) return null
  return layers * kvHeads * (keyLength + valueLength) * 2
}
