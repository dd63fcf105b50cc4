#!/usr/bin/env node
// `npm run soak`: many mixed requests against one engine, watching memory. Not part of
// `npm test` (it takes minutes). Reports RSS after the load, after the warm-up (100 requests)
// and at the end, and every outcome; exits non-zero when a request fails in a way that was not
// asked for (anything but the intended ABORTED / TIMEOUT) or RSS grows by 20 MB or more after
// the warm-up.
//   npm run soak -- [--requests 2000] [--concurrency 16] [--model smollm2|gemma3|PATH] [--parallel 8]
'use strict'

const { Engine } = require('..')
const { ensureModel } = require('./fetch-model')

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}

const total = Number(arg('requests', 2000))
const concurrency = Number(arg('concurrency', 16))
const parallel = Number(arg('parallel', 8))
const model = arg('model', 'smollm2')
const WARMUP = 100
const RSS_LIMIT_MB = 20

const PROMPTS = [
  'Once upon a time, in a small village by the sea, there lived',
  'The capital of France is',
  'Write a short poem about the moon.',
  'سلام، چطوری؟',
  'List three fruits:',
  'The detective looked at the empty room and realized',
]

function rng(seed) {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

const mb = (bytes) => Math.round((bytes / (1 << 20)) * 10) / 10

/** One request of a random kind; resolves to its outcome ('ok' or an error code). */
async function one(engine, i, random) {
  const prompt = PROMPTS[i % PROMPTS.length]
  const kind = random()
  const maxTokens = 8 + Math.floor(random() * 40)
  try {
    if (kind < 0.35) {
      const history = [
        { role: 'system', content: 'You are a helpful assistant.' },
        { role: 'user', content: prompt },
      ]
      await engine.generate(history, { maxTokens, seed: i })
      return { kind: 'chat', outcome: 'ok' }
    }
    if (kind < 0.65) {
      for await (const _ of engine.stream(prompt, { maxTokens, seed: i })) {
        // consume
      }
      return { kind: 'stream', outcome: 'ok' }
    }
    if (kind < 0.85) {
      const controller = new AbortController()
      setTimeout(() => controller.abort(), Math.floor(random() * 150))
      for await (const _ of engine.stream(prompt, { maxTokens: 64, seed: i, signal: controller.signal })) {
        // consume until aborted
      }
      return { kind: 'abort', outcome: 'ok' }
    }
    await engine.generate(prompt, { maxTokens: 64, seed: i, timeoutMs: 20 + Math.floor(random() * 150) })
    return { kind: 'timeout', outcome: 'ok' }
  } catch (err) {
    return { kind: kind < 0.35 ? 'chat' : kind < 0.65 ? 'stream' : kind < 0.85 ? 'abort' : 'timeout', outcome: err.code || String(err) }
  }
}

async function main() {
  const modelPath = model === 'smollm2' || model === 'gemma3' ? ensureModel(model) : model
  const engine = await Engine.load({ modelPath, threads: 2, contextSize: 1024, parallel, maxQueue: 256 })
  const random = rng(1234)
  const rss = { afterLoadMb: mb(process.memoryUsage().rss), afterWarmupMb: 0, endMb: 0 }
  const counts = {}
  const unexpected = []
  let next = 0
  let done = 0
  const started = Date.now()
  async function worker() {
    while (next < total) {
      const i = next++
      const { kind, outcome } = await one(engine, i, random)
      const key = `${kind}:${outcome}`
      counts[key] = (counts[key] || 0) + 1
      const intended = outcome === 'ok' || (kind === 'abort' && outcome === 'ABORTED') || (kind === 'timeout' && outcome === 'TIMEOUT')
      if (!intended) unexpected.push({ i, kind, outcome })
      done++
      if (done === WARMUP) rss.afterWarmupMb = mb(process.memoryUsage().rss)
      if (done % 250 === 0) process.stderr.write(`[soak] ${done}/${total} requests, rss ${mb(process.memoryUsage().rss)} MB\n`)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  // Let the engine settle (cancelled slots are freed at the next step).
  for (let i = 0; i < 100 && engine.metrics().slotsBusy > 0; i++) await new Promise((r) => setTimeout(r, 20))
  rss.endMb = mb(process.memoryUsage().rss)
  const metrics = engine.metrics()
  await engine.unload()
  const growth = Math.round((rss.endMb - rss.afterWarmupMb) * 10) / 10
  const summary = {
    requests: total,
    seconds: Math.round((Date.now() - started) / 100) / 10,
    rss,
    rssGrowthAfterWarmupMb: growth,
    outcomes: counts,
    unexpected: unexpected.slice(0, 20),
    unexpectedCount: unexpected.length,
    engine: {
      requestsTotal: metrics.requestsTotal,
      completed: metrics.requestsCompleted,
      aborted: metrics.requestsAborted,
      timedOut: metrics.requestsTimedOut,
      failed: metrics.requestsFailed,
      slotsBusyAtEnd: metrics.slotsBusy,
      cacheHits: metrics.cacheHits,
      ttftP50Ms: Math.round(metrics.ttftP50Ms),
      ttftP99Ms: Math.round(metrics.ttftP99Ms),
    },
  }
  console.log(JSON.stringify(summary, null, 2))
  const ok = unexpected.length === 0 && growth < RSS_LIMIT_MB && metrics.slotsBusy === 0
  console.log(ok ? `soak passed: RSS growth after warm-up ${growth} MB (< ${RSS_LIMIT_MB} MB), no unexpected failures` : 'soak FAILED')
  process.exit(ok ? 0 : 1)
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
