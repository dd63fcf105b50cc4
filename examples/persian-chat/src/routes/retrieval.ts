// POST /v1/embeddings (OpenAI's shape: string or array input, float or base64 vectors, usage)
// and POST /v1/rerank (llama-server's shape: results by relevance, top_n). Each runs on its own
// embedding engine (retrieval.ts); many inputs of one request, and of concurrent requests, share
// the engine's decodes. Bodies are checked by the schemas in schemas.ts.
import { Router, type Response } from 'express'
import type { Config } from '../config'
import type { RetrievalService } from '../retrieval'
import { requestParsers } from '../schemas'
import { abortOnDisconnect } from '../sse'

/** Little-endian float32 bytes in base64, as OpenAI's `encoding_format: 'base64'` gives them. */
function base64(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64')
}

/** Cancels the request's work when its client hangs up. */
const signalFor = (res: Response) => abortOnDisconnect(res, () => undefined).signal

/** The routes this router serves under /v1 (they run on the retrieval engines, not the chat one). */
export const RETRIEVAL_PATHS: readonly string[] = ['/embeddings', '/rerank']

export function retrievalRouter(config: Config, retrieval: RetrievalService): Router {
  const router = Router()
  const parse = requestParsers(config)

  const [embeddingsPath, rerankPath] = RETRIEVAL_PATHS
  router.post(embeddingsPath, async (req, res) => {
    const { input, encodingFormat } = parse.embeddings(req.body)
    const engine = await retrieval.engine('embedding')
    const vectors = await engine.embed(input, { signal: signalFor(res) })
    const promptTokens = vectors.promptTokens
    res.json({
      object: 'list',
      data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: encodingFormat === 'base64' ? base64(v) : Array.from(v) })),
      model: retrieval.modelId('embedding'),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    })
  })

  router.post(rerankPath, async (req, res) => {
    const { query, documents, topN, returnDocuments } = parse.rerank(req.body)
    const engine = await retrieval.engine('rerank')
    const scores = await engine.rank(query, documents, { signal: signalFor(res) })
    const promptTokens = scores.promptTokens
    const results = scores
      .map((score, index) => ({ index, relevance_score: score, ...(returnDocuments ? { document: { text: documents[index] } } : {}) }))
      .sort((a, b) => b.relevance_score - a.relevance_score)
      .slice(0, topN ?? documents.length)
    res.json({ object: 'list', model: retrieval.modelId('rerank'), results, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } })
  })

  return router
}
