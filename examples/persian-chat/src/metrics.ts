// GET /metrics in Prometheus text format: HTTP and process metrics from prom-client, plus the
// engine's own counters (napi-llama `metrics()`) read at scrape time.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { BackendMetrics } from 'napi-llama'
import type { Response } from 'express'
import { keyName } from './auth'
import type { LlmService } from './llm'

export class ServiceMetrics {
  readonly registry = new Registry()

  readonly httpRequests = new Counter({
    name: 'http_requests_total',
    help: 'HTTP requests by method, route and status.',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  })

  readonly httpDuration = new Histogram({
    name: 'http_request_duration_seconds',
    help: 'HTTP request duration (whole streamed reply included).',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
    registers: [this.registry],
  })

  readonly clientDisconnects = new Counter({
    name: 'chat_client_disconnects_total',
    help: 'Chat requests whose client went away before the reply was complete (generation cancelled).',
    labelNames: ['route'] as const,
    registers: [this.registry],
  })

  readonly clientRequests = new Counter({
    name: 'http_client_requests_total',
    help: 'API requests by client (the API key\'s name; "anonymous" without keys), route and status.',
    labelNames: ['client', 'route', 'status'] as const,
    registers: [this.registry],
  })

  readonly clientLimitRejections = new Counter({
    name: 'http_client_concurrency_rejections_total',
    help: 'Requests refused because their client already had MAX_INFLIGHT_PER_CLIENT running or waiting.',
    labelNames: ['client'] as const,
    registers: [this.registry],
  })

  readonly slowReadersDropped = new Counter({
    name: 'chat_slow_readers_dropped_total',
    help: 'Streamed replies dropped (and their generation cancelled) because the client stopped reading.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  })

  constructor(private readonly llm: LlmService) {
    collectDefaultMetrics({ register: this.registry })
  }

  async render(): Promise<string> {
    const base = await this.registry.metrics()
    return (base.endsWith('\n') ? base : base + '\n') + this.engineMetrics()
  }

  /** A bounded label for a client: its key's name (IPs would grow without limit). */
  clientLabel(res: Response): string {
    return keyName(res) ?? 'anonymous'
  }

  get contentType(): string {
    return this.registry.contentType
  }

  private engineMetrics(): string {
    const lines: string[] = []
    const metric = (name: string, type: 'counter' | 'gauge', help: string, value: number, labels = '') => {
      lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`, `${name}${labels} ${formatNumber(value)}`)
    }
    const info = this.llm.info
    const ready = this.llm.state === 'ready'
    metric('llm_model_loaded', 'gauge', 'Whether the model is loaded and serving (1) or not (0).', ready ? 1 : 0)
    if (info) {
      metric(
        'llm_model_info',
        'gauge',
        'The loaded model.',
        1,
        `{model="${escapeLabel(this.llm.modelId)}",architecture="${escapeLabel(info.architecture)}",context_size="${info.contextSize}",parallel="${info.parallel}"}`,
      )
    }
    const m = this.llm.metrics()
    // Prometheus convention: a `_total` name is a counter, anything else a gauge.
    const samples: [string, number, string][] = [
      ['llm_requests_total', m.requestsTotal, 'Generation requests received by the engine.'],
      ['llm_requests_completed_total', m.requestsCompleted, 'Requests that finished with a reply.'],
      ['llm_requests_failed_total', m.requestsFailed, 'Requests that failed.'],
      ['llm_requests_aborted_total', m.requestsAborted, 'Requests cancelled (client gone or stop pressed).'],
      ['llm_requests_timed_out_total', m.requestsTimedOut, 'Requests that hit their deadline.'],
      ['llm_prompt_tokens_total', m.promptTokensTotal, 'Prompt tokens of all requests.'],
      ['llm_prompt_tokens_evaluated_total', m.promptTokensEvaluated, 'Prompt tokens actually evaluated (not served from the cache).'],
      ['llm_cached_tokens_total', m.cachedTokensTotal, 'Prompt tokens reused from the slot caches.'],
      ['llm_cache_hits_total', m.cacheHits, 'Requests that reused cached prompt tokens.'],
      ['llm_prompt_cache_entries', m.promptCacheEntries, 'Saved conversation states kept in memory.'],
      ['llm_prompt_cache_bytes', m.promptCacheBytes, 'Memory those states take.'],
      ['llm_prompt_cache_limit_bytes', m.promptCacheLimitBytes, 'Memory the prompt cache may take.'],
      ['llm_prompt_cache_hits_total', m.promptCacheHits, 'Requests that restored a saved state.'],
      ['llm_prompt_cache_restored_tokens_total', m.promptCacheRestoredTokens, 'Prompt tokens reused from restored states.'],
      ['llm_prompt_cache_saves_total', m.promptCacheSaves, 'Slot states saved before another conversation took the slot.'],
      ['llm_prompt_cache_evictions_total', m.promptCacheEvictions, 'States pushed out of memory by its bound.'],
      ['llm_prompt_cache_restore_failures_total', m.promptCacheRestoreFailures, 'Saved states llama.cpp refused to restore.'],
      ['llm_prompt_cache_swa_fallbacks_total', m.promptCacheSwaFallbacks, 'Cached prefixes that could not be cut back (sliding-window layers); evaluated in full.'],
      ['llm_prompt_cache_disk_entries', m.promptCacheDiskEntries, 'Saved states on disk.'],
      ['llm_prompt_cache_disk_bytes', m.promptCacheDiskBytes, 'Disk those states take.'],
      ['llm_prompt_cache_disk_loads_total', m.promptCacheDiskLoads, 'States moved back from disk for a request.'],
      ['llm_prompt_cache_disk_writes_total', m.promptCacheDiskWrites, 'States written to disk.'],
      ['llm_prompt_cache_disk_rejected_total', m.promptCacheDiskRejected, 'Cache files not loaded: another model or build, truncated, damaged.'],
      ['llm_prompt_cache_disk_dropped_total', m.promptCacheDiskDropped, 'States not written: the writer was behind or the disk refused them.'],
      ['llm_completion_tokens_total', m.completionTokensTotal, 'Generated tokens.'],
      ['llm_decode_calls_total', m.decodeCalls, 'llama.cpp decode steps (each batches every active request).'],
      ['llm_requests_active', m.requestsActive, 'Requests holding a slot.'],
      ['llm_requests_queued', m.requestsQueued, 'Requests waiting for a slot.'],
      ['llm_slots_busy', m.slotsBusy, 'Busy slots.'],
      ['llm_slots', m.slotsTotal, 'Slots (requests decoded together).'],
      ['llm_prompt_tokens_per_second', m.promptTokensPerSecond, 'Aggregate prompt evaluation speed.'],
      ['llm_decode_tokens_per_second', m.decodeTokensPerSecond, 'Aggregate generation speed over all slots.'],
      ['llm_uptime_seconds', m.uptimeMs / 1000, 'Seconds since the model was loaded.'],
    ]
    for (const [name, value, help] of samples) metric(name, name.endsWith('_total') ? 'counter' : 'gauge', help, value)
    lines.push(
      '# HELP llm_time_to_first_token_seconds Time to first token over the last 1024 requests.',
      '# TYPE llm_time_to_first_token_seconds gauge',
      `llm_time_to_first_token_seconds{quantile="0.5"} ${formatNumber(m.ttftP50Ms / 1000)}`,
      `llm_time_to_first_token_seconds{quantile="0.95"} ${formatNumber(m.ttftP95Ms / 1000)}`,
      `llm_time_to_first_token_seconds{quantile="0.99"} ${formatNumber(m.ttftP99Ms / 1000)}`,
    )
    if ('backends' in m) {
      const perBackend: [string, 'counter' | 'gauge', string, (b: BackendMetrics) => number][] = [
        ['llm_backend_up', 'gauge', 'Whether the backend takes requests (1) or is out of the pool (0).', (b) => (b.breaker === 'closed' && health.get(b.name) ? 1 : 0)],
        ['llm_backend_requests_total', 'counter', 'Attempts sent to the backend.', (b) => b.requests],
        ['llm_backend_completed_total', 'counter', 'Attempts the backend completed.', (b) => b.completed],
        ['llm_backend_failed_total', 'counter', 'Attempts that failed on the backend.', (b) => b.failed],
        ['llm_backend_redispatched_total', 'counter', 'Attempts taken back from a failing backend before any reply and sent elsewhere.', (b) => b.redispatched],
        ['llm_backend_probes_failed_total', 'counter', 'Readiness probes the backend failed.', (b) => b.probesFailed],
        ['llm_backend_completion_tokens_total', 'counter', 'Tokens the backend generated.', (b) => b.metrics.completionTokensTotal],
        ['llm_backend_cached_tokens_total', 'counter', 'Prompt tokens the backend reused from its cache.', (b) => b.metrics.cachedTokensTotal],
      ]
      const health = new Map((this.llm.backends() ?? []).map((b) => [b.name, b.ready]))
      for (const [name, type, help, value] of perBackend) {
        lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
        for (const b of m.backends) lines.push(`${name}{backend="${escapeLabel(b.name)}"} ${formatNumber(value(b))}`)
      }
      metric('llm_retries_total', 'counter', 'Requests sent again to another backend after a failure before the first byte.', m.retries)
    }
    return lines.join('\n') + '\n'
  }
}

function formatNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'NaN'
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}
