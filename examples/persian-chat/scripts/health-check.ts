// `npm run health-check [-- --url http://127.0.0.1:3000] [--api-key KEY] [--timeout MS]`
// checks a running service; `npm run health-check -- --local` loads the model in this process
// instead (no server needed). Prints ✅/❌ per component with its latency and exits 1 if any
// component failed.
import fs from 'node:fs'
import path from 'node:path'
import dotenv from 'dotenv'
import type { Engine } from 'napi-llama'
import { type Config, loadConfig } from '../src/config'

interface Outcome {
  ok: boolean
  detail: string
}

const results: { name: string; ok: boolean; ms: number; detail: string }[] = []

function arg(name: string): string | undefined {
  const i = process.argv.indexOf(name)
  return i >= 0 ? process.argv[i + 1] : undefined
}

function print(name: string, ok: boolean, ms: number, detail: string): void {
  results.push({ name, ok, ms, detail })
  const latency = `${ms.toFixed(0)} ms`.padStart(8)
  console.log(`${ok ? '✅' : '❌'} ${name.padEnd(14)} ${latency}  ${detail}`)
}

/** Runs one check; a thrown error is a failure whose message is the detail. */
async function check(name: string, run: () => Promise<Outcome | string>): Promise<boolean> {
  const started = performance.now()
  try {
    const outcome = await run()
    const { ok, detail } = typeof outcome === 'string' ? { ok: true, detail: outcome } : outcome
    print(name, ok, performance.now() - started, detail)
    return ok
  } catch (err) {
    const e = err as Error & { code?: string; cause?: { code?: string } }
    const code = e.code ?? e.cause?.code
    print(name, false, performance.now() - started, code ? `${code}: ${e.message}` : e.message)
    return false
  }
}

function skip(name: string, because: string): void {
  print(name, false, 0, `skipped: ${because}`)
}

const PERSIAN_PROMPT = 'سلام! در یک جمله خودت را معرفی کن.'

// ---- a running service ---------------------------------------------------------------------

async function checkService(baseUrl: string, apiKey: string | undefined, timeoutMs: number): Promise<void> {
  const headers: Record<string, string> = { 'Content-Type': 'application/json' }
  if (apiKey) headers.Authorization = `Bearer ${apiKey}`
  const request = (pathname: string, init: RequestInit = {}) =>
    fetch(new URL(pathname, baseUrl), { ...init, headers, signal: AbortSignal.timeout(timeoutMs) })

  console.log(`Checking ${baseUrl}`)
  let health: { status?: string; model?: string; slotsBusy?: number; slotsTotal?: number; error?: string; models?: { name: string; state: string }[] } = {}
  const reachable = await check('HTTP server', async () => {
    const res = await request('/health')
    health = await res.json()
    return `GET /health → ${res.status}`
  })
  if (!reachable) {
    for (const name of ['Model', 'Generation', 'Streaming', 'Metrics']) skip(name, 'server unreachable')
    return
  }
  const loaded = await check('Model', async () => ({
    ok: health.status === 'ok',
    detail:
      health.status !== 'ok'
        ? `status ${health.status}${health.error ? `: ${health.error}` : ''}`
        : health.models // several models (LLM_MODELS_FILE): each loads on its first request
          ? `${health.models.map((m) => `${m.name} ${m.state}`).join(', ')}; default ${health.model}`
          : `${health.model} (${health.slotsBusy}/${health.slotsTotal} slots busy)`,
  }))
  if (loaded) {
    await check('Generation', async () => {
      const res = await request('/v1/chat/completions', {
        method: 'POST',
        body: JSON.stringify({ messages: [{ role: 'user', content: PERSIAN_PROMPT }], max_tokens: 16 }),
      })
      const body = await res.json()
      if (!res.ok) return { ok: false, detail: `${res.status} ${body?.error?.code}: ${body?.error?.message}` }
      const text: string = body.choices?.[0]?.message?.content ?? ''
      return { ok: text.length > 0, detail: `${body.usage?.completion_tokens} tokens: ${JSON.stringify(text.slice(0, 40))}` }
    })
    await check('Streaming', async () => {
      const started = performance.now()
      const res = await request('/api/chat', { method: 'POST', body: JSON.stringify({ message: PERSIAN_PROMPT, stream: true }) })
      if (!res.ok || !res.body) return { ok: false, detail: `${res.status} ${await res.text()}` }
      const decoder = new TextDecoder()
      let text = ''
      let firstMs = -1
      for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
        if (firstMs < 0) firstMs = performance.now() - started
        text += decoder.decode(bytes, { stream: true })
        if (text.includes('event: done') || text.includes('event: error')) break
      }
      const ok = text.includes('event: done')
      return { ok, detail: ok ? `first event after ${firstMs.toFixed(0)} ms` : `no done event: ${text.slice(-200)}` }
    })
  } else {
    skip('Generation', 'model not loaded')
    skip('Streaming', 'model not loaded')
  }
  await check('Metrics', async () => {
    const res = await request('/metrics')
    const text = await res.text()
    const ok = res.ok && /^llm_model_loaded 1$/m.test(text)
    return { ok, detail: ok ? `${text.split('\n').filter((l) => l && !l.startsWith('#')).length} samples` : `${res.status}, llm_model_loaded is not 1` }
  })
}

// ---- the model in this process -------------------------------------------------------------

async function checkLocal(config: Config): Promise<void> {
  // Imported here so checking a remote service never loads the native addon.
  const napiLlama = await import('napi-llama')
  console.log(`Checking the model in this process: ${config.modelPath}`)
  const exists = await check('Model file', async () => {
    const size = fs.statSync(config.modelPath).size
    return `${(size / 1024 ** 2).toFixed(0)} MiB`
  })
  let engine: Engine | undefined
  const loaded =
    exists &&
    (await check('Model load', async () => {
      engine = await napiLlama.Engine.load({
        modelPath: config.modelPath,
        contextSize: config.contextSize,
        threads: config.threads,
        gpuLayers: config.gpuLayers,
        parallel: config.parallel,
        chatTemplate: config.chatTemplate,
      })
      const info = engine.info
      return `${info.name} (${info.architecture}, context ${info.contextSize}, ${info.threads} threads, template ${info.chatTemplateSource})`
    }))
  if (!loaded || !engine) {
    for (const name of ['Tokenizer', 'Generation', 'Streaming']) skip(name, 'model not loaded')
    return
  }
  const model = engine
  try {
    await check('Tokenizer', async () => {
      const tokens = model.tokenize(PERSIAN_PROMPT)
      const back = model.detokenize(tokens)
      return { ok: back === PERSIAN_PROMPT, detail: `${tokens.length} tokens, round trip ${back === PERSIAN_PROMPT ? 'exact' : 'differs'}` }
    })
    const messages = [
      { role: 'system' as const, content: config.systemPrompt },
      { role: 'user' as const, content: PERSIAN_PROMPT },
    ]
    await check('Generation', async () => {
      const g = await model.generate(messages, { maxTokens: 24, temperature: 0, timeoutMs: 60_000 })
      return { ok: g.text.length > 0, detail: `${g.completionTokens} tokens, ${g.timings.tokensPerSecond.toFixed(1)} tok/s: ${JSON.stringify(g.text.slice(0, 40))}` }
    })
    await check('Streaming', async () => {
      const started = performance.now()
      let firstMs = -1
      let pieces = 0
      for await (const chunk of model.stream(messages, { maxTokens: 24, temperature: 0, timeoutMs: 60_000 })) {
        if (firstMs < 0) firstMs = performance.now() - started
        if (!chunk.done) pieces++
      }
      return { ok: pieces > 0, detail: `${pieces} pieces, first after ${firstMs.toFixed(0)} ms` }
    })
  } finally {
    await model.unload()
  }
}

async function main(): Promise<void> {
  dotenv.config({ path: path.join(process.cwd(), '.env'), quiet: true })
  const timeoutMs = Number(arg('--timeout') ?? 60_000)
  if (process.argv.includes('--local')) {
    let config: Config | null = null
    await check('Configuration', async () => {
      config = loadConfig()
      return `context ${config.contextSize}, ${config.parallel} slots, max ${config.maxTokens} tokens`
    })
    if (config) await checkLocal(config)
    else for (const name of ['Model file', 'Model load', 'Tokenizer', 'Generation', 'Streaming']) skip(name, 'bad configuration')
  } else {
    const port = process.env.PORT || '3000'
    const url = arg('--url') ?? `http://127.0.0.1:${port}`
    await checkService(url, arg('--api-key') ?? process.env.API_KEY, timeoutMs)
  }
  const failed = results.filter((r) => !r.ok).length
  console.log(failed === 0 ? `\nAll ${results.length} checks passed.` : `\n${failed} of ${results.length} checks failed.`)
  process.exitCode = failed === 0 ? 0 : 1
}

main().catch((err: Error) => {
  console.error(`❌ health-check crashed: ${err.stack ?? err.message}`)
  process.exitCode = 1
})
