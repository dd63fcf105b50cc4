import * as path from 'node:path'
import type { StreamChunk, Generation } from '../index'

const MODELS_DIR = process.env.NAPI_LLAMA_MODELS_DIR || path.join(__dirname, '..', 'models')

export const SMOLLM2 = path.join(MODELS_DIR, 'SmolLM2-135M-Instruct.Q4_1.gguf')
export const GEMMA3 = path.join(MODELS_DIR, 'gemma-3-270m-q4_k_m.gguf')
/** all-MiniLM-L6-v2, a BERT sentence-embedding model the fetch script converts to GGUF. */
export const MINILM = path.join(MODELS_DIR, 'all-MiniLM-L6-v2.f32.gguf')

/** A completion the test models continue for hundreds of tokens (for abort/timeout tests). */
export const LONG_PROMPT = 'Once upon a time, in a small village by the sea, there lived'

/** Small, fast settings for a 2-core machine. */
export const FAST = { threads: 1, contextSize: 1024 }

export async function collect(stream: AsyncIterable<StreamChunk>): Promise<{ chunks: StreamChunk[]; text: string; final?: Generation }> {
  const chunks: StreamChunk[] = []
  let final: Generation | undefined
  for await (const chunk of stream) {
    chunks.push(chunk)
    if (chunk.done) final = chunk.generation
  }
  return { chunks, text: chunks.map((c) => c.text).join(''), final }
}

/** Awaits a promise expected to fail and returns its error. */
export async function failure(p: Promise<unknown> | (() => unknown)): Promise<{ code?: string; message: string }> {
  try {
    if (typeof p === 'function') await p()
    else await p
  } catch (err) {
    return err as { code?: string; message: string }
  }
  throw new Error('expected a failure, but it succeeded')
}
