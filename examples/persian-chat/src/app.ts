// The Express application: middleware order is the policy.
//   request id + log + HTTP metrics → security headers → Host check (DNS rebinding) →
//   /health (open) → /metrics (behind the key unless METRICS_PUBLIC) →
//   /api and /v1: CORS (opt-in) → per-IP rate limit → API key → per-client cap on running
//   requests → JSON body (size-limited) → routes →
//   the web page (static) → JSON 404 for anything else → one error handler (OpenAI-style body, never a stack trace).
import crypto from 'node:crypto'
import fs from 'node:fs'
import path from 'node:path'
import express, { type NextFunction, type Request, type Response } from 'express'
import { rateLimit } from 'express-rate-limit'
import { ApiKeys, keyName, requireApiKey } from './auth'
import { perClientLimit } from './client-limit'
import type { Config } from './config'
import { ApiError, clientError } from './errors'
import { hostCheck } from './host-check'
import type { LlmService } from './llm'
import { ServiceMetrics } from './metrics'
import { chatRouter } from './routes/chat'
import { openaiRouter } from './routes/openai'
import { RETRIEVAL_PATHS, retrievalRouter } from './routes/retrieval'
import { RetrievalService } from './retrieval'
import { healthRouter, metricsHandler } from './routes/system'
import { securityHeaders } from './security-headers'

/** The package's root (holds public/), from src/ under ts-jest or dist/src/ when built. */
function packageRoot(): string {
  let dir = __dirname
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir)
  return dir
}

export const PUBLIC_DIR = path.join(packageRoot(), 'public')

export interface App {
  app: express.Express
  metrics: ServiceMetrics
  /** The embedding and reranking engines (loaded on first use); stop them with the service. */
  retrieval: RetrievalService
}

const ROUTES = ['/api/chat', '/v1/chat/completions', '/v1/embeddings', '/v1/rerank', '/v1/models', '/health', '/metrics']

/** A bounded set of route labels for metrics (raw URLs would grow without limit). */
function routeLabel(req: Request): string {
  const pathname = req.originalUrl.split('?')[0]
  if (ROUTES.includes(pathname)) return pathname
  if (pathname.startsWith('/v1/models/')) return '/v1/models/:id'
  return req.method === 'GET' ? 'static' : 'unmatched'
}

function requestContext(config: Config, metrics: ServiceMetrics) {
  return (req: Request, res: Response, next: NextFunction) => {
    const started = process.hrtime.bigint()
    const requestId = crypto.randomUUID()
    res.locals.requestId = requestId
    res.setHeader('X-Request-Id', requestId)
    res.on('close', () => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9
      const route = routeLabel(req)
      const status = res.writableFinished ? String(res.statusCode) : 'disconnected'
      metrics.httpRequests.inc({ method: req.method, route, status })
      metrics.httpDuration.observe({ route }, seconds)
      if (route.startsWith('/api/') || route.startsWith('/v1/')) metrics.clientRequests.inc({ client: metrics.clientLabel(res), route, status })
      if (config.logRequests) {
        // The key's name stands for the client; the key itself is never logged.
        const line = { time: new Date().toISOString(), requestId, ip: req.ip, client: keyName(res), method: req.method, path: req.path, status, ms: Math.round(seconds * 1000) }
        process.stdout.write(JSON.stringify(line) + '\n')
      }
    })
    next()
  }
}

/**
 * CORS for browser clients on other origins, only when CORS_ORIGINS allows them: a local model
 * should not be callable by any web page a user happens to open. Preflights end here, before
 * the API key check (browsers send them without credentials).
 */
function cors(origins: string[]) {
  const any = origins.includes('*')
  return (req: Request, res: Response, next: NextFunction) => {
    const origin = req.get('origin')
    if (!origin || origins.length === 0 || (!any && !origins.includes(origin))) return next()
    res.setHeader('Access-Control-Allow-Origin', any ? '*' : origin)
    res.setHeader('Vary', 'Origin')
    if (req.method !== 'OPTIONS') return next()
    res.setHeader('Access-Control-Allow-Methods', 'GET, POST, OPTIONS')
    res.setHeader('Access-Control-Allow-Headers', req.get('access-control-request-headers') ?? 'Authorization, Content-Type')
    res.setHeader('Access-Control-Max-Age', '600')
    res.status(204).end()
  }
}

function perIpRateLimit(config: Config) {
  if (config.rateLimitPerMinute === 0) return (_req: Request, _res: Response, next: NextFunction) => next()
  return rateLimit({
    windowMs: 60_000,
    limit: config.rateLimitPerMinute,
    standardHeaders: 'draft-7',
    legacyHeaders: false,
    handler: (_req, _res, next) =>
      next(new ApiError(429, 'rate_limit_error', 'rate_limit_exceeded', `Too many requests: at most ${config.rateLimitPerMinute} per minute per client`)),
  })
}

/**
 * The per-client cap, counted apart for the chat engine and for the embedding and reranking
 * engines: each has a queue of its own, and a client streaming chats must still be able to embed.
 */
function perEngineClientLimit(limit: number, metrics: ServiceMetrics) {
  const generation = perClientLimit(limit, metrics)
  const retrieval = perClientLimit(limit, metrics)
  return (req: Request, res: Response, next: NextFunction) =>
    (RETRIEVAL_PATHS.includes(req.path) ? retrieval : generation)(req, res, next)
}

export function createApp(config: Config, llm: LlmService): App {
  const metrics = new ServiceMetrics(llm)
  const retrieval = new RetrievalService(config)
  const keys = new ApiKeys(config.apiKeys)
  const app = express()
  app.disable('x-powered-by')
  app.set('trust proxy', config.trustProxy)

  app.use(requestContext(config, metrics))
  app.use(securityHeaders())
  app.use(hostCheck(config))
  app.use(healthRouter(llm))
  app.get('/metrics', ...(config.metricsPublic ? [] : [requireApiKey(keys)]), metricsHandler(metrics))

  const api = [
    cors(config.corsOrigins),
    perIpRateLimit(config),
    requireApiKey(keys),
    perEngineClientLimit(config.maxInflightPerClient, metrics),
    express.json({ limit: config.bodyLimit }),
  ]
  app.use('/api', ...api, chatRouter(config, llm, metrics))
  app.use('/v1', ...api, openaiRouter(config, llm, metrics), retrievalRouter(config, retrieval))
  app.use(express.static(PUBLIC_DIR, { index: 'index.html', maxAge: 0 }))
  app.use((req: Request) => {
    throw new ApiError(404, 'not_found_error', 'not_found', `No route for ${req.method} ${req.path}`)
  })

  // Express recognises an error handler by its four parameters.
  app.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    const apiError = clientError(err, res.locals.requestId as string)
    if (res.headersSent || res.destroyed) return void res.end()
    res.set(apiError.headers).status(apiError.status).json(apiError.toBody())
  })

  return { app, metrics, retrieval }
}
