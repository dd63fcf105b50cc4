#!/usr/bin/env node
// `npm run bench`: on SmolLM2 and Gemma 3, all measured in this run on this machine and printed
// as ratios against baselines from the same run:
//   single       one stream: decode tokens/s, TTFT and event-loop delay through stream(), vs a
//                plain Rust loop over llama-cpp-2 in the same build ("raw") and node-llama-cpp 3.22.1
//   concurrency  1, 2, 4, 8 streams at once: aggregate tokens/s and TTFT p50/p95, vs a plain
//                batched Rust loop ("raw batched") and node-llama-cpp with one context of 8 sequences
//   eventloop    one stream through stream() with responsiveEventLoop on and off: event-loop
//                delay p99 and max, and the tokens/s ratio (the option must not cost speed)
//   cache        a 4-turn Persian chat on Gemma 3: each turn's TTFT with and without prompt-cache reuse
//   npm run bench -- [--suites single,concurrency,eventloop,cache] [--rounds 5] [--reps 2] [--tokens 128]
//                    [--concurrent-tokens 64] [--threads 2] [--models smollm2,gemma3] [--no-nlc]
// The machine is shared and its speed drifts by tens of percent within minutes, so the runners
// being compared take turns: each round runs every runner once (a fresh process, one warm-up,
// then --reps measured repetitions), starting with a different runner each round. A ratio is
// the median over rounds of that round's ratio, so drift between rounds cancels out.
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

const rounds = Number(arg('rounds', 5))
const reps = Number(arg('reps', 2))
const tokens = Number(arg('tokens', 128))
const threads = Number(arg('threads', 2))
const models = arg('models', 'smollm2,gemma3').split(',')
const withNlc = !process.argv.includes('--no-nlc')
const suites = arg('suites', 'single,concurrency,eventloop,cache').split(',')
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

/**
 * Runs every runner once per round, rotating which goes first. Returns, per runner key, the
 * list of per-round results (null where a runner failed).
 */
function interleaved(runners) {
  const results = Object.fromEntries(runners.map((r) => [r.key, []]))
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < runners.length; i++) {
      const runner = runners[(i + round) % runners.length]
      let value = null
      try {
        value = runner.run()
      } catch (e) {
        log(`${runner.key} failed in round ${round + 1}: ${e.message}`)
      }
      results[runner.key].push(value)
    }
  }
  return results
}

/** Median over rounds of a/b, using only rounds where both sides have a value. */
function roundRatio(as, bs, pick) {
  const ratios = []
  for (let i = 0; i < as.length; i++) if (as[i] && bs[i]) ratios.push(pick(as[i]) / pick(bs[i]))
  return ratios.length ? median(ratios) : NaN
}

function medianOf(list, pick) {
  const xs = list.filter(Boolean).map(pick)
  return xs.length ? median(xs) : NaN
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
    log(`single, ${name}: raw loop, stream()${nlc ? ', node-llama-cpp' : ''} taking turns, ${rounds} rounds`)
    const runners = [
      { key: 'raw', run: () => summarize(runJson(raw, args)) },
      { key: 'ours', run: () => summarize(runJson(process.execPath, [path.join(__dirname, 'ours.js'), ...args])) },
    ]
    if (nlc) runners.push({ key: 'nlc', run: () => summarize(runJson(process.execPath, [path.join(__dirname, 'node-llama-cpp.js'), ...args])) })
    const r = interleaved(runners)
    const tps = (x) => x.decodeTps
    rows.push({
      name,
      raw: { decodeTps: medianOf(r.raw, tps), ttftMs: medianOf(r.raw, (x) => x.ttftMs) },
      ours: { decodeTps: medianOf(r.ours, tps), ttftMs: medianOf(r.ours, (x) => x.ttftMs), loopDelayP99Ms: medianOf(r.ours, (x) => x.loopDelayP99Ms) },
      nlc: nlc ? { decodeTps: medianOf(r.nlc, tps), ttftMs: medianOf(r.nlc, (x) => x.ttftMs) } : null,
      oursOverRaw: roundRatio(r.ours, r.raw, tps),
      oursOverNlc: nlc ? roundRatio(r.ours, r.nlc, tps) : NaN,
      rounds: r,
    })
  }
  console.log(`\nOne stream: decode, ${tokens} tokens, ${threads} threads, ${rounds} rounds taking turns (each: one warm-up, median of ${reps}); tok/s = median over rounds, ratios = median of per-round ratios; prompt: "${PROMPT}"\n`)
  console.log('| model | napi-llama stream() tok/s | raw llama-cpp-2 tok/s | node-llama-cpp tok/s | ours ÷ raw | ours ÷ node-llama-cpp | TTFT ours / raw / nlc (ms) | event-loop p99 (ms) |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const { name, raw: r, ours: o, nlc: n, oursOverRaw, oursOverNlc } of rows) {
    console.log(
      `| ${name} | ${f(o.decodeTps)} | ${f(r.decodeTps)} | ${f(n && n.decodeTps)} | ${f(oursOverRaw, 2)}× | ${n ? f(oursOverNlc, 2) + '×' : '–'} | ${f(o.ttftMs)} / ${f(r.ttftMs)} / ${f(n && n.ttftMs)} | ${f(o.loopDelayP99Ms, 2)} |`,
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
    log(`concurrency, ${name}: raw batched loop, napi-llama (${slots} slots)${nlc ? ', node-llama-cpp (one context, ' + slots + ' sequences)' : ''} taking turns, ${rounds} rounds per level`)
    const row = { name, raw: {}, ours: {}, nlc: nlc ? {} : null, oursOverRaw: {}, oursOverNlc: nlc ? {} : null, loopDelayP99Ms: NaN }
    // Each level is its own set of rounds, so the runners compared at a level run minutes apart
    // at most, not a whole suite apart.
    for (const level of LEVELS) {
      const common = [modelPath, String(concurrentTokens), String(reps), String(threads), slots, String(level), JSON.stringify(STORY_PROMPTS)]
      const runners = [
        { key: 'raw', run: () => levelSummary({ levels: { [level]: runJson(raw, [modelPath, String(concurrentTokens), String(reps), String(threads), slots, ...STORY_PROMPTS.slice(0, level)]) } })[level] },
        {
          key: 'ours',
          run: () => {
            const result = runJson(process.execPath, [path.join(__dirname, 'ours-concurrency.js'), ...common])
            return { ...levelSummary(result)[level], loopDelayP99Ms: result.loopDelayP99Ms }
          },
        },
      ]
      if (nlc) runners.push({ key: 'nlc', run: () => levelSummary(runJson(process.execPath, [path.join(__dirname, 'nlc-concurrency.js'), ...common]))[level] })
      const r = interleaved(runners)
      const summary = (list) => ({
        aggregateTps: medianOf(list, (x) => x.aggregateTps),
        ttftP50Ms: medianOf(list, (x) => x.ttftP50Ms),
        ttftP95Ms: medianOf(list, (x) => x.ttftP95Ms),
      })
      row.raw[level] = summary(r.raw)
      row.ours[level] = summary(r.ours)
      row.oursOverRaw[level] = roundRatio(r.ours, r.raw, (x) => x.aggregateTps)
      if (nlc) {
        row.nlc[level] = summary(r.nlc)
        row.oursOverNlc[level] = roundRatio(r.ours, r.nlc, (x) => x.aggregateTps)
      }
      if (level === 8) row.loopDelayP99Ms = medianOf(r.ours, (x) => x.loopDelayP99Ms)
    }
    rows.push(row)
  }
  console.log(`\nConcurrent streams: ${concurrentTokens} tokens each, ${threads} threads, greedy, aggregate tok/s = all streams' tokens ÷ wall time; per level, ${rounds} rounds taking turns (each: one warm-up, median of ${reps}); tok/s and TTFT = median over rounds, ratios = median of per-round ratios\n`)
  console.log('| model | streams | napi-llama tok/s | raw batched tok/s | node-llama-cpp tok/s | ours ÷ raw | ours ÷ nlc | TTFT p50/p95 ours (ms) | raw (ms) | nlc (ms) |')
  console.log('|---|---|---|---|---|---|---|---|---|---|')
  for (const { name, raw: r, ours: o, nlc: n, oursOverRaw, oursOverNlc } of rows) {
    for (const level of LEVELS) {
      const a = o[level]
      const b = r[level]
      const c = n && n[level]
      console.log(
        `| ${name} | ${level} | ${f(a.aggregateTps)} | ${f(b.aggregateTps)} | ${f(c && c.aggregateTps)} | ${f(oursOverRaw[level], 2)}× | ${c ? f(oursOverNlc[level], 2) + '×' : '–'} | ${f(a.ttftP50Ms, 0)} / ${f(a.ttftP95Ms, 0)} | ${f(b.ttftP50Ms, 0)} / ${f(b.ttftP95Ms, 0)} | ${c ? f(c.ttftP50Ms, 0) + ' / ' + f(c.ttftP95Ms, 0) : '–'} |`,
      )
    }
  }
  for (const row of rows) console.log(`\n${row.name}: event-loop delay p99 while 8 streams run: ${f(row.loopDelayP99Ms, 2)} ms`)
  return rows
}

function eventLoop() {
  const rows = []
  for (const name of models) {
    const modelPath = ensureModel(name)
    const args = [modelPath, String(tokens), String(reps), String(threads), PROMPT]
    log(`eventloop, ${name}: stream() with responsiveEventLoop on and off taking turns, ${rounds} rounds`)
    const run = (mode) => () => {
      const x = runJson(process.execPath, [path.join(__dirname, 'ours.js'), ...args, mode])
      return { ...summarize(x), loopDelayMaxMs: x.loopDelayMaxMs }
    }
    const r = interleaved([
      { key: 'on', run: run('slice-on') },
      { key: 'off', run: run('slice-off') },
    ])
    const p99 = (x) => x.loopDelayP99Ms
    const max = (x) => x.loopDelayMaxMs
    rows.push({
      name,
      on: { loopDelayP99Ms: medianOf(r.on, p99), loopDelayMaxMs: medianOf(r.on, max), decodeTps: medianOf(r.on, (x) => x.decodeTps) },
      off: { loopDelayP99Ms: medianOf(r.off, p99), loopDelayMaxMs: medianOf(r.off, max), decodeTps: medianOf(r.off, (x) => x.decodeTps) },
      p99OnOverOff: roundRatio(r.on, r.off, p99),
      tpsOnOverOff: roundRatio(r.on, r.off, (x) => x.decodeTps),
    })
  }
  console.log(`\nEvent-loop delay while one stream decodes (${tokens} tokens, ${threads} threads), responsiveEventLoop on vs off, ${rounds} rounds taking turns; medians over rounds\n`)
  console.log('| model | p99 on / off (ms) | max on / off (ms) | p99 on ÷ off | tok/s on / off | tok/s on ÷ off |')
  console.log('|---|---|---|---|---|---|')
  for (const { name, on, off, p99OnOverOff, tpsOnOverOff } of rows) {
    console.log(
      `| ${name} | ${f(on.loopDelayP99Ms, 2)} / ${f(off.loopDelayP99Ms, 2)} | ${f(on.loopDelayMaxMs, 1)} / ${f(off.loopDelayMaxMs, 1)} | ${f(p99OnOverOff, 2)}× | ${f(on.decodeTps)} / ${f(off.decodeTps)} | ${f(tpsOnOverOff, 2)}× |`,
    )
  }
  return rows
}

function cache() {
  const modelPath = ensureModel('gemma3')
  log('cache, gemma3: 4-turn Persian chat, TTFT with and without prompt-cache reuse')
  // One process (two engines inside, used in turn); every turn is repeated `rounds` times.
  const r = runJson(process.execPath, [path.join(__dirname, 'chat-cache.js'), modelPath, String(rounds), String(threads)])
  const turns = r.turns.map((t, i) => ({
    turn: i + 1,
    promptTokens: t.promptTokens,
    cachedTokens: t.cachedTokens,
    withCacheMs: median(t.withCache),
    withoutCacheMs: median(t.withoutCache),
  }))
  console.log(`\nPrompt-cache reuse: a 4-turn Persian chat on Gemma 3 (system prompt + turns, 48-token replies), ${threads} threads, TTFT median of ${rounds}\n`)
  console.log('| turn | prompt tokens | reused from cache | TTFT with reuse (ms) | TTFT without (ms) | with ÷ without |')
  console.log('|---|---|---|---|---|---|')
  for (const t of turns) {
    console.log(`| ${t.turn} | ${t.promptTokens} | ${t.cachedTokens} | ${f(t.withCacheMs)} | ${f(t.withoutCacheMs)} | ${f((100 * t.withCacheMs) / t.withoutCacheMs, 0)}% |`)
  }
  return turns
}

function main() {
  const nlc = withNlc && (suites.includes('single') || suites.includes('concurrency')) && ensureNodeLlamaCpp()
  const results = { date: new Date().toISOString(), tokens, concurrentTokens, threads, rounds, reps }
  if (suites.includes('single')) results.single = single(nlc)
  if (suites.includes('concurrency')) results.concurrency = concurrency(nlc)
  if (suites.includes('eventloop')) results.eventLoop = eventLoop()
  if (suites.includes('cache')) results.cache = cache()
  const out = path.join(__dirname, 'results', 'latest.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify(results, null, 2))
  log(`wrote ${path.relative(ROOT, out)}`)
}

main()
