// POST /v1/embeddings (OpenAI's shape: string or array input, float or base64 vectors, usage)
// and POST /v1/rerank (llama-server's shape: results by relevance, top_n). Each runs on its own
// embedding engine (retrieval.ts); many inputs of one request, and of concurrent requests, share
// the engine's decodes. Bodies are checked by the schemas in schemas.ts.
import { Router, type Response } from 'express'
import type { Engine } from 'napi-llama'
import type { Config } from '../config'
import type { RetrievalService } from '../retrieval'
import { requestParsers } from '../schemas'
import { abortOnDisconnect } from '../sse'

/** Tokens of the texts as evaluated, for `usage`. */
function tokenCount(engine: Engine, texts: string[]): number {
  return texts.reduce((sum, text) => sum + engine.countTokens(text), 0)
}

/** Little-endian float32 bytes in base64, as OpenAI's `encoding_format: 'base64'` gives them. */
function base64(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64')
}

/** Cancels the request's work when its client hangs up. */
const signalFor = (res: Response) => abortOnDisconnect(res, () => undefined).signal

export function retrievalRouter(config: Config, retrieval: RetrievalService): Router {
  const router = Router()
  const parse = requestParsers(config)

  router.post('/embeddings', async (req, res) => {
    const { input, encodingFormat } = parse.embeddings(req.body)
    const engine = await retrieval.engine('embedding')
    const vectors = await engine.embed(input, { signal: signalFor(res) })
    const promptTokens = tokenCount(engine, input)
    res.json({
      object: 'list',
      data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: encodingFormat === 'base64' ? base64(v) : Array.from(v) })),
      model: retrieval.modelId('embedding'),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    })
  })

  router.post('/rerank', async (req, res) => {
    const { query, documents, topN, returnDocuments } = parse.rerank(req.body)
    const engine = await retrieval.engine('rerank')
    const scores = await engine.rank(query, documents, { signal: signalFor(res) })
    const promptTokens = engine.countTokens(query) * documents.length + tokenCount(engine, documents)
    const results = scores
      .map((score, index) => ({ index, relevance_score: score, ...(returnDocuments ? { document: { text: documents[index] } } : {}) }))
      .sort((a, b) => b.relevance_score - a.relevance_score)
      .slice(0, topN ?? documents.length)
    res.json({ object: 'list', model: retrieval.modelId('rerank'), results, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } })
  })

  return router
}
