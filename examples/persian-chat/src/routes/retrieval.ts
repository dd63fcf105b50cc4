// POST /v1/embeddings (OpenAI's shape: string or array input, float or base64 vectors, usage)
// and POST /v1/rerank (llama-server's shape: results by relevance, top_n). Each runs on its own
// embedding engine (retrieval.ts); many inputs of one request, and of concurrent requests, share
// the engine's decodes.
import { Router, type Request, type Response } from 'express'
import type { Engine } from 'napi-llama'
import type { Config } from '../config'
import { badRequest } from '../errors'
import type { RetrievalService } from '../retrieval'
import { abortOnDisconnect } from '../sse'

/** OpenAI's own bound on inputs per request. */
const MAX_INPUTS = 2048

type Body = Record<string, unknown>

function objectBody(req: Request): Body {
  const body: unknown = req.body
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw badRequest('The request body must be a JSON object')
  return body as Body
}

/** Refuses fields this endpoint does not know, so a misspelt or unsupported option is not silently ignored. */
function onlyFields(body: Body, known: readonly string[]): void {
  for (const key of Object.keys(body)) {
    if (!known.includes(key)) throw badRequest(`Unrecognized request argument supplied: ${key}`, key)
  }
}

function texts(value: unknown, field: string, maxChars: number): string[] {
  const list = typeof value === 'string' ? [value] : value
  if (!Array.isArray(list) || list.length === 0) throw badRequest(`'${field}' must be a non-empty string or array of strings`, field)
  if (list.length > MAX_INPUTS) throw badRequest(`'${field}' has ${list.length} items; at most ${MAX_INPUTS}`, field)
  list.forEach((text, i) => {
    if (typeof text !== 'string') {
      const hint = typeof text === 'number' || Array.isArray(text) ? ' (token arrays are not supported: send text)' : ''
      throw badRequest(`'${field}[${i}]' must be a string${hint}`, field)
    }
    if (text.length === 0) throw badRequest(`'${field}[${i}]' is empty`, field)
    if (text.length > maxChars) throw badRequest(`'${field}[${i}]' is longer than ${maxChars} characters`, field)
  })
  return list as string[]
}

/** Tokens of the texts as evaluated, for `usage`. */
function tokenCount(engine: Engine, list: string[]): number {
  return list.reduce((sum, text) => sum + engine.countTokens(text), 0)
}

/** Little-endian float32 bytes in base64, as OpenAI's `encoding_format: 'base64'` gives them. */
function base64(vector: Float32Array): string {
  return Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength).toString('base64')
}

export function retrievalRouter(config: Config, retrieval: RetrievalService): Router {
  const router = Router()

  const signalFor = (res: Response) => abortOnDisconnect(res, () => undefined).signal

  router.post('/embeddings', async (req, res) => {
    const body = objectBody(req)
    onlyFields(body, ['input', 'model', 'encoding_format', 'dimensions', 'user'])
    const input = texts(body.input, 'input', config.maxMessageChars)
    const format = body.encoding_format ?? 'float'
    if (format !== 'float' && format !== 'base64') throw badRequest("'encoding_format' must be 'float' or 'base64'", 'encoding_format')
    if (body.dimensions !== undefined) throw badRequest("'dimensions' is not supported: the model's vectors have a fixed length", 'dimensions')
    if (body.model !== undefined && typeof body.model !== 'string') throw badRequest("'model' must be a string", 'model')
    const engine = await retrieval.engine('embedding')
    const vectors = await engine.embed(input, { signal: signalFor(res) })
    const promptTokens = tokenCount(engine, input)
    res.json({
      object: 'list',
      data: vectors.map((v, index) => ({ object: 'embedding', index, embedding: format === 'base64' ? base64(v) : Array.from(v) })),
      model: retrieval.modelId('embedding'),
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    })
  })

  router.post('/rerank', async (req, res) => {
    const body = objectBody(req)
    onlyFields(body, ['query', 'documents', 'top_n', 'return_documents', 'model', 'user'])
    if (typeof body.query !== 'string' || body.query === '') throw badRequest("'query' must be a non-empty string", 'query')
    if (body.query.length > config.maxMessageChars) throw badRequest(`'query' is longer than ${config.maxMessageChars} characters`, 'query')
    const documents = texts(body.documents, 'documents', config.maxMessageChars)
    const topN = body.top_n ?? documents.length
    if (typeof topN !== 'number' || !Number.isInteger(topN) || topN < 1) throw badRequest("'top_n' must be a positive integer", 'top_n')
    if (body.return_documents !== undefined && typeof body.return_documents !== 'boolean') throw badRequest("'return_documents' must be a boolean", 'return_documents')
    if (body.model !== undefined && typeof body.model !== 'string') throw badRequest("'model' must be a string", 'model')
    const engine = await retrieval.engine('rerank')
    const scores = await engine.rank(body.query, documents, { signal: signalFor(res) })
    const promptTokens = engine.countTokens(body.query) * documents.length + tokenCount(engine, documents)
    const results = scores
      .map((score, index) => ({ index, relevance_score: score, ...(body.return_documents ? { document: { text: documents[index] } } : {}) }))
      .sort((a, b) => b.relevance_score - a.relevance_score)
      .slice(0, topN)
    res.json({ object: 'list', model: retrieval.modelId('rerank'), results, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } })
  })

  return router
}
