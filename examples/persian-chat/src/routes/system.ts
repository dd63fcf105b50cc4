// GET /health (200 when the model is loaded and its inference thread answers, 503 while loading
// or after a failed load) and GET /metrics (Prometheus text).
import { Router } from 'express'
import type { LlmService } from '../llm'
import type { ServiceMetrics } from '../metrics'

/** 'ok' | 'loading' | 'error' | 'unloaded', as napi-llama's `health().status`. */
function serviceStatus(llm: LlmService, engineStatus: string): string {
  switch (llm.state) {
    case 'ready':
      return engineStatus
    case 'loading':
      return 'loading'
    case 'failed':
      return 'error'
    default:
      return 'unloaded'
  }
}

export function systemRouter(llm: LlmService, metrics: ServiceMetrics): Router {
  const router = Router()

  router.get('/health', (_req, res) => {
    const engine = llm.health()
    const ok = llm.state === 'ready' && engine.status === 'ok'
    res.status(ok ? 200 : 503).json({
      status: ok ? 'ok' : serviceStatus(llm, engine.status),
      model: llm.modelId,
      modelLoaded: ok,
      contextSize: engine.contextSize,
      slotsBusy: engine.slotsBusy,
      slotsTotal: engine.slotsTotal,
      queueDepth: engine.queueDepth,
      uptimeMs: Math.round(process.uptime() * 1000),
      modelUptimeMs: engine.uptimeMs,
      error: llm.loadError ?? engine.lastError,
    })
  })

  router.get('/metrics', async (_req, res) => {
    res.setHeader('Content-Type', metrics.contentType)
    res.send(await metrics.render())
  })

  return router
}
