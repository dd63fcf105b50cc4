// The models behind /v1/embeddings and /v1/rerank: each a napi-llama embedding engine of its
// own, loaded on the first request that needs it (a chat-only deployment never pays for one)
// and unloaded at shutdown. A failed load answers that request 503 and is retried by the next.
import path from 'node:path'
import { Engine } from 'napi-llama'
import type { Config } from './config'
import { ApiError } from './errors'

export type RetrievalKind = 'embedding' | 'rerank'

const SETTING: Record<RetrievalKind, string> = { embedding: 'LLM_EMBEDDING_MODEL', rerank: 'LLM_RERANK_MODEL' }

class LazyEngine {
  private loading: Promise<Engine> | null = null
  private stopped = false

  constructor(
    readonly modelPath: string,
    private readonly load: () => Promise<Engine>,
  ) {}

  get(): Promise<Engine> {
    if (this.stopped) return Promise.reject(new ApiError(503, 'service_unavailable_error', 'aborted', 'The service is shutting down'))
    if (!this.loading) {
      const loading = this.load()
      this.loading = loading
      loading.catch(() => {
        if (this.loading === loading) this.loading = null
      })
    }
    return this.loading
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
      this.engines.embedding = new LazyEngine(modelPath, () => Engine.load({ ...common, modelPath, embeddings: true, pooling: config.embeddingPooling }))
    }
    if (config.rerankModel) {
      const modelPath = config.rerankModel
      this.engines.rerank = new LazyEngine(modelPath, () => Engine.load({ ...common, modelPath, embeddings: true, pooling: 'rank' }))
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
