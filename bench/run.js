#!/usr/bin/env node
// `npm run bench`: on SmolLM2 and Gemma 3, all measured in this run on this machine and printed
// as ratios against baselines from the same run:
//   single       one stream: decode tokens/s, TTFT and event-loop delay through stream(), vs a
//                plain Rust loop over llama-cpp-2 in the same build ("raw") and node-llama-cpp 3.22.1
//   concurrency  1, 2, 4, 8 streams at once: aggregate tokens/s and TTFT p50/p95, vs a plain
//                batched Rust loop ("raw batched") and node-llama-cpp with one context of 8 sequences
//   cache        a 4-turn Persian chat on Gemma 3: each turn's TTFT with and without prompt-cache reuse
//   npm run bench -- [--suites single,concurrency,cache] [--reps 5] [--tokens 128]
//                    [--concurrent-tokens 64] [--threads 2] [--models smollm2,gemma3] [--no-nlc]
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { ROOT, targetTriple, buildEnv, targetDir } = require('../scripts/build-env')
const { ensureModel } = require('../scripts/fetch-model')

const PROMPT = 'Once upon a time, in a small village by the sea, there lived'

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}

const reps = Number(arg('reps', 5))
const tokens = Number(arg('tokens', 128))
const threads = Number(arg('threads', 2))
const models = arg('models', 'smollm2,gemma3').split(',')
const withNlc = !process.argv.includes('--no-nlc')
const suites = arg('suites', 'single,concurrency,cache').split(',')
const concurrentTokens = Number(arg('concurrent-tokens', 64))
const LEVELS = [1, 2, 4, 8]
const STORY_PROMPTS = [
  'Once upon a time, in a small village by the sea, there lived',
  'The old lighthouse keeper opened the door and saw',
  'In the year 2150, the first city on Mars',
  'My grandmother always told me that the forest',
  'The detective looked at the empty room and realized',
  'Deep under the ocean, a small robot named Pip',
  'When the train stopped in the middle of the desert,',
  'The recipe for the perfect bread begins with',
]

function percentile(xs, q) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil(q * s.length) - 1))]
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`)
}

function runJson(cmd, args, env) {
  const r = spawnSync(cmd, args, { cwd: ROOT, encoding: 'utf8', env: env || process.env, maxBuffer: 16 << 20 })
  if (r.status !== 0) throw new Error(`${path.basename(cmd)} failed: ${(r.stderr || '').slice(-2000)}`)
  const line = r.stdout.trim().split('\n').filter((l) => l.startsWith('{')).pop()
  return JSON.parse(line)
}

function buildRaw(name) {
  const triple = targetTriple()
  const env = buildEnv()
  log(`building ${name} (cargo example, same flags as the addon)`)
  const r = spawnSync('cargo', ['build', '--release', '--example', name, '--target', triple], { cwd: ROOT, env, stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`cargo build --example ${name} failed`)
  return path.join(targetDir(env), triple, 'release', 'examples', name)
}

function ensureNodeLlamaCpp() {
  const dir = __dirname
  if (fs.existsSync(path.join(dir, 'node_modules', 'node-llama-cpp', 'package.json'))) return true
  log('installing node-llama-cpp 3.22.1 into bench/ (CPU build only)')
  const r = spawnSync('npm', ['install', '--omit=optional', '--no-audit', '--no-fund', '--no-package-lock'], {
    cwd: dir,
    stdio: 'inherit',
    env: { ...process.env, NODE_LLAMA_CPP_SKIP_DOWNLOAD: 'true' },
  })
  return r.status === 0
}

function summarize(result) {
  return {
    decodeTps: median(result.decodeTps),
    ttftMs: median(result.ttftMs),
    tokens: median(result.tokens),
    loopDelayP99Ms: result.loopDelayP99Ms,
  }
}

const f = (x, d = 1) => (x == null || Number.isNaN(x) ? '–' : x.toFixed(d))

function single(nlc) {
  const raw = buildRaw('raw_decode')
  const rows = []
  for (const name of models) {
    const modelPath = ensureModel(name)
    const args = [modelPath, String(tokens), String(reps), String(threads), PROMPT]
    log(`single, ${name}: raw llama-cpp-2 loop`)
    const r = summarize(runJson(raw, args))
    log(`single, ${name}: napi-llama stream()`)
    const o = summarize(runJson(process.execPath, [path.join(__dirname, 'ours.js'), ...args]))
    let n = null
    if (nlc) {
      log(`single, ${name}: node-llama-cpp 3.22.1`)
      try {
        n = summarize(runJson(process.execPath, [path.join(__dirname, 'node-llama-cpp.js'), ...args]))
      } catch (e) {
        log(`node-llama-cpp failed: ${e.message}`)
      }
    }
    rows.push({ name, raw: r, ours: o, nlc: n })
  }
  console.log(`\nOne stream: decode, ${tokens} tokens, ${threads} threads, median of ${reps} (after one warm-up); prompt: "${PROMPT}"\n`)
  console.log('| model | napi-llama stream() tok/s | raw llama-cpp-2 tok/s | node-llama-cpp tok/s | ours ÷ raw | ours ÷ node-llama-cpp | TTFT ours / raw / nlc (ms) | event-loop p99 (ms) |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const { name, raw: r, ours: o, nlc: n } of rows) {
    console.log(
      `| ${name} | ${f(o.decodeTps)} | ${f(r.decodeTps)} | ${f(n && n.decodeTps)} | ${f(o.decodeTps / r.decodeTps, 2)}× | ${n ? f(o.decodeTps / n.decodeTps, 2) + '×' : '–'} | ${f(o.ttftMs)} / ${f(r.ttftMs)} / ${f(n && n.ttftMs)} | ${f(o.loopDelayP99Ms, 2)} |`,
    )
  }
  return rows
}

function levelSummary(result) {
  const out = {}
  for (const [n, r] of Object.entries(result.levels)) {
    out[n] = { aggregateTps: median(r.aggregateTps), ttftP50Ms: percentile(r.ttftMs, 0.5), ttftP95Ms: percentile(r.ttftMs, 0.95) }
  }
  return out
}

function concurrency(nlc) {
  const raw = buildRaw('raw_batched')
  const slots = String(Math.max(...LEVELS))
  const rows = []
  for (const name of models) {
    const modelPath = ensureModel(name)
    log(`concurrency, ${name}: raw batched loop`)
    const rawLevels = {}
    for (const n of LEVELS) {
      const r = runJson(raw, [modelPath, String(concurrentTokens), String(reps), String(threads), slots, ...STORY_PROMPTS.slice(0, n)])
      rawLevels[n] = r
    }
    const r = levelSummary({ levels: rawLevels })
    const common = [modelPath, String(concurrentTokens), String(reps), String(threads), slots, LEVELS.join(','), JSON.stringify(STORY_PROMPTS)]
    log(`concurrency, ${name}: napi-llama, ${slots} slots`)
    const oursRaw = runJson(process.execPath, [path.join(__dirname, 'ours-concurrency.js'), ...common])
    const o = levelSummary(oursRaw)
    let n = null
    if (nlc) {
      log(`concurrency, ${name}: node-llama-cpp, one context with ${slots} sequences`)
      try {
        n = levelSummary(runJson(process.execPath, [path.join(__dirname, 'nlc-concurrency.js'), ...common]))
      } catch (e) {
        log(`node-llama-cpp failed: ${e.message}`)
      }
    }
    rows.push({ name, raw: r, ours: o, nlc: n, loopDelayP99Ms: oursRaw.loopDelayP99Ms })
  }
  console.log(`\nConcurrent streams: ${concurrentTokens} tokens each, ${threads} threads, greedy, aggregate tok/s = all streams' tokens ÷ wall time, median of ${reps}; TTFT p50/p95 over all streams of all repetitions\n`)
  console.log('| model | streams | napi-llama tok/s | raw batched tok/s | node-llama-cpp tok/s | ours ÷ raw | ours ÷ nlc | TTFT p50/p95 ours (ms) | raw (ms) | nlc (ms) |')
  console.log('|---|---|---|---|---|---|---|---|---|---|')
  for (const { name, raw: r, ours: o, nlc: n } of rows) {
    for (const level of LEVELS) {
      const a = o[level]
      const b = r[level]
      const c = n && n[level]
      console.log(
        `| ${name} | ${level} | ${f(a.aggregateTps)} | ${f(b.aggregateTps)} | ${f(c && c.aggregateTps)} | ${f(a.aggregateTps / b.aggregateTps, 2)}× | ${c ? f(a.aggregateTps / c.aggregateTps, 2) + '×' : '–'} | ${f(a.ttftP50Ms, 0)} / ${f(a.ttftP95Ms, 0)} | ${f(b.ttftP50Ms, 0)} / ${f(b.ttftP95Ms, 0)} | ${c ? f(c.ttftP50Ms, 0) + ' / ' + f(c.ttftP95Ms, 0) : '–'} |`,
      )
    }
  }
  for (const row of rows) console.log(`\n${row.name}: event-loop delay p99 while 8 streams run: ${f(row.loopDelayP99Ms, 2)} ms`)
  return rows
}

function cache() {
  const modelPath = ensureModel('gemma3')
  log('cache, gemma3: 4-turn Persian chat, TTFT with and without prompt-cache reuse')
  const r = runJson(process.execPath, [path.join(__dirname, 'chat-cache.js'), modelPath, String(reps), String(threads)])
  const turns = r.turns.map((t, i) => ({
    turn: i + 1,
    promptTokens: t.promptTokens,
    cachedTokens: t.cachedTokens,
    withCacheMs: median(t.withCache),
    withoutCacheMs: median(t.withoutCache),
  }))
  console.log(`\nPrompt-cache reuse: a 4-turn Persian chat on Gemma 3 (system prompt + turns, 48-token replies), ${threads} threads, TTFT median of ${reps}\n`)
  console.log('| turn | prompt tokens | reused from cache | TTFT with reuse (ms) | TTFT without (ms) | with ÷ without |')
  console.log('|---|---|---|---|---|---|')
  for (const t of turns) {
    console.log(`| ${t.turn} | ${t.promptTokens} | ${t.cachedTokens} | ${f(t.withCacheMs)} | ${f(t.withoutCacheMs)} | ${f((100 * t.withCacheMs) / t.withoutCacheMs, 0)}% |`)
  }
  return turns
}

function main() {
  const nlc = withNlc && (suites.includes('single') || suites.includes('concurrency')) && ensureNodeLlamaCpp()
  const results = { date: new Date().toISOString(), tokens, concurrentTokens, threads, reps }
  if (suites.includes('single')) results.single = single(nlc)
  if (suites.includes('concurrency')) results.concurrency = concurrency(nlc)
  if (suites.includes('cache')) results.cache = cache()
  const out = path.join(__dirname, 'results', 'latest.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify(results, null, 2))
  log(`wrote ${path.relative(ROOT, out)}`)
}

main()
