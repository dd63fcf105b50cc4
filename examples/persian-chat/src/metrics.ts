// GET /metrics in Prometheus text format: HTTP and process metrics from prom-client, plus the
// engine's own counters (napi-llama `metrics()`) read at scrape time.
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client'
import type { BackendHealth, BackendMetrics, Metrics, ModelInfo, PoolHealth, PoolMetrics } from 'napi-llama'
import type { Response } from 'express'
import { keyName } from './auth'
import type { LlmService } from './llm'
import type { ModelState } from './multi-model/registry'

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

  // Cost tracking: what each client (API key name) spent on each model.
  readonly clientPromptTokens = new Counter({
    name: 'llm_client_prompt_tokens_total',
    help: 'Prompt tokens of finished replies, by client (the API key\'s name; "anonymous" without keys) and model.',
    labelNames: ['client', 'model'] as const,
    registers: [this.registry],
  })

  readonly clientCompletionTokens = new Counter({
    name: 'llm_client_completion_tokens_total',
    help: 'Generated tokens of finished replies, and of streamed replies cut short (cancelled, failed), by client and model.',
    labelNames: ['client', 'model'] as const,
    registers: [this.registry],
  })

  constructor(private readonly llm: LlmService) {
    collectDefaultMetrics({ register: this.registry })
    llm.onUsage(({ client, model, promptTokens, completionTokens }) => {
      this.clientPromptTokens.inc({ client, model }, promptTokens)
      this.clientCompletionTokens.inc({ client, model }, completionTokens)
    })
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
    const out = new PrometheusText()
    const registry = this.llm.registry
    if (!registry) {
      // One model: its series carry no model label, as before several models existed.
      const backends = this.llm.backends()
      this.engineSeries(out, '', this.llm.state === 'ready', this.llm.info, this.llm.metrics(), backends)
      return out.render()
    }
    out.sample('llm_memory_budget_bytes', 'gauge', 'Memory the models may hold together (LLM_MEMORY_BUDGET).', registry.budgetBytes)
    out.sample('llm_memory_used_bytes', 'gauge', "Memory the models hold: weights plus KV caches as the engine reports them (estimates while loading).", registry.usedBytes)
    for (const m of registry.statuses()) {
      const model = `model="${escapeLabel(m.name)}"`
      for (const state of MODEL_STATES) out.sample('llm_model_state', 'gauge', "The model's state (1 for the current one).", m.state === state ? 1 : 0, `{${model},state="${state}"}`)
      out.sample('llm_model_memory_bytes', 'gauge', 'Memory the model holds against the budget.', m.memoryBytes, `{${model}}`)
      out.sample('llm_model_requests_in_flight', 'gauge', 'Requests holding the model (running, queued, or waiting for it to load).', m.inFlight, `{${model}}`)
      out.sample('llm_model_loads_total', 'counter', 'Times the model was loaded.', m.counters.loads, `{${model}}`)
      out.sample('llm_model_load_failures_total', 'counter', 'Loads of the model that failed (or needed more than the budget).', m.counters.loadFailures, `{${model}}`)
      for (const reason of ['idle', 'evicted'] as const) {
        out.sample('llm_model_unloads_total', 'counter', 'Times the model was unloaded: idle for its TTL, or evicted for another model.', m.counters.unloads[reason], `{${model},reason="${reason}"}`)
      }
      const health = m.engine?.health()
      const backends = health && 'backends' in health ? (health as PoolHealth).backends : null
      this.engineSeries(out, model, m.state === 'loaded', m.engine?.info ?? null, m.engine?.metrics() ?? null, backends)
    }
    return out.render()
  }

  /** One engine's series; `model` is its label (empty with one model). Without metrics (not loaded), only llm_model_loaded. */
  private engineSeries(out: PrometheusText, model: string, loaded: boolean, info: ModelInfo | null, m: Metrics | PoolMetrics | null, backendHealth: BackendHealth[] | null): void {
    const labels = (extra = '') => {
      const all = [model, extra].filter(Boolean).join(',')
      return all ? `{${all}}` : ''
    }
    out.sample('llm_model_loaded', 'gauge', 'Whether the model is loaded and serving (1) or not (0).', loaded ? 1 : 0, labels())
    if (info) {
      const id = model ? '' : `model="${escapeLabel(this.llm.modelId)}",`
      out.sample(
        'llm_model_info',
        'gauge',
        'The loaded model.',
        1,
        labels(`${id}architecture="${escapeLabel(info.architecture)}",context_size="${info.contextSize}",parallel="${info.parallel}"`),
      )
    }
    if (!m) return
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
    for (const [name, value, help] of samples) out.sample(name, name.endsWith('_total') ? 'counter' : 'gauge', help, value, labels())
    const ttft = 'Time to first token over the last 1024 requests.'
    out.sample('llm_time_to_first_token_seconds', 'gauge', ttft, m.ttftP50Ms / 1000, labels('quantile="0.5"'))
    out.sample('llm_time_to_first_token_seconds', 'gauge', ttft, m.ttftP95Ms / 1000, labels('quantile="0.95"'))
    out.sample('llm_time_to_first_token_seconds', 'gauge', ttft, m.ttftP99Ms / 1000, labels('quantile="0.99"'))
    if ('backends' in m) {
      const health = new Map((backendHealth ?? []).map((b) => [b.name, b.ready]))
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
      for (const [name, type, help, value] of perBackend) {
        for (const b of m.backends) out.sample(name, type, help, value(b), labels(`backend="${escapeLabel(b.name)}"`))
      }
      out.sample('llm_retries_total', 'counter', 'Requests sent again to another backend after a failure before the first byte.', m.retries, labels())
    }
  }
}

const MODEL_STATES: readonly ModelState[] = ['configured', 'loading', 'loaded', 'unloaded', 'failed']

/** Prometheus text, grouped by metric: one HELP and TYPE per name, then its samples, whatever order they come in. */
class PrometheusText {
  private readonly families = new Map<string, string[]>()

  sample(name: string, type: 'counter' | 'gauge', help: string, value: number, labels = ''): void {
    let lines = this.families.get(name)
    if (!lines) {
      lines = [`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`]
      this.families.set(name, lines)
    }
    lines.push(`${name}${labels} ${formatNumber(value)}`)
  }

  render(): string {
    return [...this.families.values()].map((lines) => lines.join('\n') + '\n').join('')
  }
}

function formatNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'NaN'
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')
}
