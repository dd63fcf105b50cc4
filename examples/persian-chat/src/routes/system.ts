// GET /health (200 when the model is loaded and its inference thread makes progress, 503 while
// loading, after a failed load, or when requests are active but no decode step has finished for
// STALL_MS) and GET /metrics (Prometheus text). With several models (LLM_MODELS_FILE), /health
// reports each model's state instead (modelsHealth). /health is open to probes, so it tells
// nothing about the machine: file paths in error messages are cut to their last part.
import path from 'node:path'
import { type RequestHandler, Router } from 'express'
import type { PoolHealth } from 'napi-llama'
import type { LlmService } from '../llm'
import type { ModelRegistry } from '../multi-model/registry'
import type { ServiceMetrics } from '../metrics'

/** A decode step takes milliseconds to a few seconds (a long prompt chunk on a slow CPU). */
const STALL_MS = 30_000

/** 'ok' | 'loading' | 'error' | 'unloaded', as napi-llama's `health().status`. */
function serviceStatus(llm: LlmService, engineStatus: string | undefined): string {
  switch (llm.state) {
    case 'ready':
      return engineStatus ?? 'unloaded'
    case 'loading':
      return 'loading'
    case 'failed':
      return 'error'
    default:
      return 'unloaded'
  }
}

/** Absolute paths (`/a/b/model.gguf`, `C:\\a\\model.gguf`) in a message → their last part. */
export function withoutPaths(message: string | null): string | null {
  return message && message.replace(/(^|[\s'"`(=])((?:[A-Za-z]:)?[\\/][^\s'"`)]*)/g, (_m, before: string, p: string) => before + path.basename(p.replace(/\\/g, '/')))
}

/**
 * Several models: 200 `ok` while the service serves (models not loaded yet, or unloaded while
 * idle, are a normal state), `degraded` when a model's last load failed (the others still
 * serve); 503 `stalled` when a loaded model's inference thread is stuck, `unloaded` after shutdown.
 */
function modelsHealth(registry: ModelRegistry, stopped: boolean) {
  const models = registry.statuses().map((m) => {
    const engine = m.engine?.health()
    return {
      name: m.name,
      default: m.isDefault,
      state: m.state,
      ...(m.unloadReason ? { unloadReason: m.unloadReason } : {}),
      stalled: registry.isStalled(m.name, STALL_MS),
      inFlight: m.inFlight,
      memoryBytes: m.memoryBytes,
      estimatedMemoryBytes: m.estimatedMemoryBytes,
      contextSize: engine?.contextSize ?? 0,
      slotsBusy: engine?.slotsBusy ?? 0,
      slotsTotal: engine?.slotsTotal ?? 0,
      queueDepth: engine?.queueDepth ?? 0,
      error: withoutPaths(m.error),
      ...(engine && 'backends' in engine ? { backends: (engine as PoolHealth).backends } : {}),
    }
  })
  const stalled = models.some((m) => m.stalled)
  const status = stopped ? 'unloaded' : stalled ? 'stalled' : models.some((m) => m.state === 'failed') ? 'degraded' : 'ok'
  const defaultModel = models.find((m) => m.default)!
  return {
    httpStatus: status === 'ok' || status === 'degraded' ? 200 : 503,
    body: {
      status,
      model: defaultModel.name,
      modelLoaded: defaultModel.state === 'loaded',
      uptimeMs: Math.round(process.uptime() * 1000),
      memoryBudgetBytes: registry.budgetBytes,
      memoryUsedBytes: registry.usedBytes,
      models,
    },
  }
}

export function healthRouter(llm: LlmService): Router {
  const router = Router()

  router.get('/health', (_req, res) => {
    if (llm.registry) {
      const { httpStatus, body } = modelsHealth(llm.registry, llm.state === 'stopped')
      res.status(httpStatus).json(body)
      return
    }
    // Null until the model is loaded (and after shutdown): its figures are zero then.
    const engine = llm.health()
    const stalled = llm.isStalled(STALL_MS)
    const ok = llm.state === 'ready' && engine?.status === 'ok' && !stalled
    if (!ok && llm.state === 'loading') res.setHeader('Retry-After', '5')
    const backends = llm.backends()
    res.status(ok ? 200 : 503).json({
      status: ok ? 'ok' : stalled ? 'stalled' : serviceStatus(llm, engine?.status),
      model: llm.modelId,
      modelLoaded: ok,
      contextSize: engine?.contextSize ?? 0,
      slotsBusy: engine?.slotsBusy ?? 0,
      slotsTotal: engine?.slotsTotal ?? 0,
      queueDepth: engine?.queueDepth ?? 0,
      uptimeMs: Math.round(process.uptime() * 1000),
      modelUptimeMs: engine?.uptimeMs ?? 0,
      error: withoutPaths(llm.loadError ?? engine?.lastError ?? null),
      // With LLM_BACKENDS: each backend, ok while one of them is ready.
      ...(backends ? { backends } : {}),
    })
  })

  return router
}

export function metricsHandler(metrics: ServiceMetrics): RequestHandler {
  return async (_req, res) => {
    res.setHeader('Content-Type', metrics.contentType)
    res.send(await metrics.render())
  }
}
