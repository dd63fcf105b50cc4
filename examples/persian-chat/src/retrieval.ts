// The models behind /v1/embeddings and /v1/rerank: each a napi-llama embedding engine of its
// own, loaded on the first request that needs it (a chat-only deployment never pays for one)
// and unloaded at shutdown. A failed load is logged and answered 503 (without the server's paths);
// the next attempt comes after LOAD_RETRY_MS. Each engine takes LLM_THREADS threads of its own: a
// deployment that embeds while it chats shares its cores between them.
import path from 'node:path'
import { Engine } from 'napi-llama'
import type { Config } from './config'
import { ApiError } from './errors'

export type RetrievalKind = 'embedding' | 'rerank'

const SETTING: Record<RetrievalKind, string> = { embedding: 'LLM_EMBEDDING_MODEL', rerank: 'LLM_RERANK_MODEL' }

/** After a failed load, requests are answered 503 for this long before the next attempt (the chat models of LLM_MODELS_FILE too). */
export const LOAD_RETRY_MS = 10_000

class LazyEngine {
  private loading: Promise<Engine> | null = null
  private failedAt = 0
  private stopped = false

  constructor(
    readonly kind: RetrievalKind,
    readonly modelPath: string,
    private readonly load: () => Promise<Engine>,
  ) {}

  get(): Promise<Engine> {
    if (this.stopped) return Promise.reject(new ApiError(503, 'service_unavailable_error', 'aborted', 'The service is shutting down'))
    if (!this.loading && Date.now() - this.failedAt < LOAD_RETRY_MS) return Promise.reject(this.unavailable())
    if (!this.loading) {
      const loading = this.load().catch((err: Error) => {
        // The detail (file path, llama.cpp's reason) is the operator's, not the client's.
        console.error(`[persian-chat] the ${this.kind} model failed to load (${SETTING[this.kind]}): ${err.message}`)
        if (this.loading === loading) {
          this.loading = null
          this.failedAt = Date.now()
        }
        throw this.unavailable()
      })
      this.loading = loading
    }
    return this.loading
  }

  private unavailable(): ApiError {
    return new ApiError(503, 'service_unavailable_error', 'model_not_loaded', `The ${this.kind} model could not be loaded; the server log says why`)
  }

  async stop(): Promise<void> {
    this.stopped = true
    const loading = this.loading
    this.loading = null
    if (loading) await loading.then((engine) => engine.unload()).catch(() => undefined)
  }
}

export class RetrievalService {
  private readonly engines: Partial<Record<RetrievalKind, LazyEngine>> = {}

  constructor(config: Config) {
    const common = { threads: config.threads, defaultTimeoutMs: config.timeoutMs, maxQueue: config.maxQueue, __faults: config.faults }
    if (config.embeddingModel) {
      const modelPath = config.embeddingModel
      this.engines.embedding = new LazyEngine('embedding', modelPath, () => Engine.load({ ...common, modelPath, embeddings: true, pooling: config.embeddingPooling }))
    }
    if (config.rerankModel) {
      const modelPath = config.rerankModel
      this.engines.rerank = new LazyEngine('rerank', modelPath, () => Engine.load({ ...common, modelPath, embeddings: true, pooling: 'rank' }))
    }
  }

  /** The id responses carry: the model file's name without `.gguf`. */
  modelId(kind: RetrievalKind): string | null {
    const engine = this.engines[kind]
    return engine ? path.basename(engine.modelPath).replace(/\.gguf$/i, '') : null
  }

  /** The loaded engine of `kind`; 501 when none is configured. */
  engine(kind: RetrievalKind): Promise<Engine> {
    const engine = this.engines[kind]
    if (!engine) {
      const what = kind === 'embedding' ? 'Embeddings are' : 'Reranking is'
      return Promise.reject(new ApiError(501, 'invalid_request_error', 'not_supported', `${what} not enabled on this server: set ${SETTING[kind]}`))
    }
    return engine.get()
  }

  async stop(): Promise<void> {
    await Promise.all(Object.values(this.engines).map((e) => e.stop()))
  }
}
