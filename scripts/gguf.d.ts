// Types of scripts/gguf.js, for the TypeScript layer (the command line's `inspect`) and the tests.

/** GGUF metadata value types. */
export declare const GGUF_TYPE: {
  readonly UINT8: 0
  readonly INT8: 1
  readonly UINT16: 2
  readonly INT16: 3
  readonly UINT32: 4
  readonly INT32: 5
  readonly FLOAT32: 6
  readonly BOOL: 7
  readonly STRING: 8
  readonly ARRAY: 9
  readonly UINT64: 10
  readonly INT64: 11
  readonly FLOAT64: 12
}

export declare const GGML_TYPE: { readonly F32: 0; readonly F16: 1 }
/** Tensor type names by ggml_type id. */
export declare const GGML_TYPE_NAME: Readonly<Record<number, string>>
/** Whole-file quantization names by llama_ftype id (`general.file_type`). */
export declare const LLAMA_FTYPE_NAME: Readonly<Record<number, string>>

/** A metadata value: 64-bit integers come as bigint, arrays as arrays of their element type. */
export type GGUFValue = number | bigint | boolean | string | GGUFValue[]

export interface GGUFTensorInfo {
  name: string
  /** Dimensions, innermost first. */
  ne: number[]
  /** A ggml_type id. */
  type: number
  offset: number
}

export interface GGUFHeader {
  version: number
  kv: Record<string, GGUFValue>
  /** Each key's GGUF_TYPE. */
  kvTypes: Record<string, number>
  tensors: GGUFTensorInfo[]
  dataOffset: number
}

/** Reads a GGUF file's metadata and tensor index; a damaged or foreign file throws with `code` INVALID_MODEL. */
export declare function readGGUFHeader(file: string): GGUFHeader

export declare class GGUFWriter {
  constructor(options?: { alignment?: number })
  add(key: string, type: number, value: GGUFValue): void
  addArray(key: string, elemType: number, values: GGUFValue[]): void
  /** `shape` outermost first; `type` GGML_TYPE.F32 or F16. */
  addTensor(name: string, shape: number[], type: number, data: Buffer): void
  header(): Buffer
  write(file: string): void
}
