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
//   chats        (only when named) many chats, few slots: 16 chats × 3 turns with ~1,100-token
//                histories, 4 at a time on 4 slots, over HTTP: TTFT p50/p95 of turn 1 and of the later
//                turns on the persian-chat service vs llama.cpp's llama-server (built once by
//                scripts/llama-server.js); then 64 chats on the service alone with its memory prompt
//                cache capped at about half of their states (LLM_PROMPT_CACHE_MB), the rest on disk
//   remote       (only when named) Engine.connect vs a plain fetch + SSE client on the same
//                llama-server, and the in-process engine vs that llama-server: 1 and 8 streams
//   server       (only when named) llama.cpp's own programs as baselines: the persian-chat service
//                vs llama-server over HTTP at 1, 4, 8 and 16 streams (tok/s, TTFT p50), in-process
//                stream() on the same chat path, event-loop delay, and generate() vs llama-bench's
//                pp512 and tg128
//   embed        (only when named) --embed-texts short texts through an embedding engine: all
//                in one embed() call (batched) vs one text per call in the same build, and vs
//                node-llama-cpp's embedding context (one text per call); texts/s and ratios
//   portable     (only when named) the portable build the platform package ships (every ggml CPU
//                variant, the best chosen at load) vs a `native` source build (-march=native) and
//                the default `auto` source build: llama-bench's pp512 and tg128 through generate(),
//                taking turns, per model
//   npm run bench -- [--suites single,concurrency,eventloop,cache,chats,remote,server,embed,tools,portable] [--rounds 5] [--reps 2] [--tokens 128]
//                    [--concurrent-tokens 64] [--threads 2] [--models smollm2,gemma3] [--no-nlc]
//   remote only:     [--models smollm2] [--remote-levels 1,8] [--remote-tokens 96] [--remote-slots 8]
//   server only:     [--rounds 3] [--server-levels 1,4,8,16] [--server-slots 16] [--server-tokens 96]
//   embed only:      [--embed-texts 256] [--embed-models minilm,smollm2]
//   tools only:      [--tools-tokens 128]
//   chats only:      [--rounds 1] [--chats 16] [--turns 3] [--chat-slots 4] [--chat-tokens 32]
//                    [--chat-context 2048] [--spill-chats 64] [--spill-cache-mb N] [--no-spill]
// The machine is shared and its speed drifts by tens of percent within minutes, so the runners
// being compared take turns: each round runs every runner once (a fresh process, one warm-up,
// then --reps measured repetitions), starting with a different runner each round. A ratio is
// the median over rounds of that round's ratio, so drift between rounds cancels out.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { ROOT, targetTriple, buildEnv, forgetStaleLlamaBuilds, targetDir, describeBuild } = require('../scripts/build-env')
const { ensureModel } = require('../scripts/fetch-model')
const servers = require('./servers')
const { MIN_TTFT_SAMPLES } = require('./level-repetitions')

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

/** Sixteen openings for the server suite: one per stream at 16 streams, so no two share a prompt. */
const SERVER_PROMPTS = [
  ...STORY_PROMPTS,
  'The last bus of the night was almost empty except for',
  'On the first day of school, the new teacher',
  'The map my uncle left me showed a path through',
  'Nobody in the town knew why the bells rang at midnight, until',
  'The chef tasted the soup and decided',
  'High in the mountains, an old monk kept',
  'The letter arrived forty years late and said',
  'At the bottom of the garden, behind the shed, the children found',
].map((p) => `Continue this story in a few paragraphs: ${p}`)

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
  forgetStaleLlamaBuilds(env)
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
 * list of per-round results (null where a runner failed). A runner's `run` may be async.
 */
async function interleaved(runners, roundCount = rounds) {
  const results = Object.fromEntries(runners.map((r) => [r.key, []]))
  for (let round = 0; round < roundCount; round++) {
    for (let i = 0; i < runners.length; i++) {
      const runner = runners[(i + round) % runners.length]
      let value = null
      try {
        value = await runner.run()
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

async function single(nlc) {
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
    const r = await interleaved(runners)
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

async function concurrency(nlc) {
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
      const r = await interleaved(runners)
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

async function eventLoop() {
  const rows = []
  for (const name of models) {
    const modelPath = ensureModel(name)
    const args = [modelPath, String(tokens), String(reps), String(threads), PROMPT]
    log(`eventloop, ${name}: stream() with responsiveEventLoop on and off taking turns, ${rounds} rounds`)
    const run = (mode) => () => {
      const x = runJson(process.execPath, [path.join(__dirname, 'ours.js'), ...args, mode])
      return { ...summarize(x), loopDelayMaxMs: x.loopDelayMaxMs }
    }
    const r = await interleaved([
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

// The chats suite: many conversations, few slots (bench/chats.js is the client). Settings:
const chatRounds = Number(arg('rounds', 1)) // one round is already 2 × 48 requests
const chatCount = Number(arg('chats', 16))
const chatTurns = Number(arg('turns', 3))
const chatSlots = Number(arg('chat-slots', 4)) // slots on each server, and clients at once
const chatTokens = Number(arg('chat-tokens', 32))
const chatContext = Number(arg('chat-context', 2048)) // per slot: a ~1,400-token chat fits
const spillChats = Number(arg('spill-chats', 64))
const spillCacheMbArg = arg('spill-cache-mb')
const withSpill = !process.argv.includes('--no-spill')

/**
 * Per model: the language of its chats, and llama-server's flags for rendering them as our
 * engine does. SmolLM2's GGUF has a Jinja template, which both render. Gemma 3 270M's has
 * none: our engine falls back to llama.cpp's built-in 'gemma' format, while llama-server
 * would use ChatML, and with Jinja on it would take `--chat-template gemma` as template text,
 * so it gets the built-in formatter without Jinja. The tables show both sides' prompt tokens.
 */
const CHAT_MODELS = {
  smollm2: { language: 'en', llamaServerArgs: [] },
  gemma3: { language: 'fa', llamaServerArgs: ['--no-jinja', '--chat-template', 'gemma'] },
}

/** p50/p95 TTFT and median prompt and cached tokens of some requests. */
function turnStats(requests) {
  const ttft = requests.map((r) => r.ttftMs)
  const cached = requests.map((r) => r.cachedTokens).filter((x) => x != null)
  return {
    requests: requests.length,
    ttftP50Ms: percentile(ttft, 0.5),
    ttftP95Ms: percentile(ttft, 0.95),
    promptTokens: median(requests.map((r) => r.promptTokens)),
    cachedTokens: cached.length ? median(cached) : NaN,
  }
}

/** One client run, in figures: turn 1 (the history is new to the server) and the later turns. */
function chatSummary(result) {
  return {
    turn1: turnStats(result.requests.filter((r) => r.turn === 1)),
    later: turnStats(result.requests.filter((r) => r.turn > 1)),
    wallMs: result.wallMs,
    // Tokens a chat's state holds at its end, for sizing the spill part's memory cache.
    chatTokens: Math.max(...result.requests.map((r) => r.promptTokens + r.completionTokens)),
    replies: Object.fromEntries(result.requests.map((r) => [`${r.chat}/${r.turn}`, r.reply])),
    metrics: result.metrics || null,
  }
}

/** Starts a server, plays the chats against it with bench/chats.js, stops it. */
async function playChats(start, { language, chatsToPlay, withMetrics }) {
  const server = await start()
  try {
    const args = [path.join(__dirname, 'chats.js'), server.url, language, chatsToPlay, chatTurns, chatSlots, chatTokens].map(String)
    const result = runJson(process.execPath, args)
    if (withMetrics) result.metrics = await servers.engineMetrics(server.url)
    return chatSummary(result)
  } catch (e) {
    throw new Error(`${e.message}\n${server.name} log (${server.logFile}):\n${server.logTail(1500)}`)
  } finally {
    await server.stop()
  }
}

/** A round's figures for latest.json, without the replies' text. */
const roundFigures = (list) => list.map((x) => x && { turn1: x.turn1, later: x.later, wallMs: x.wallMs, metrics: x.metrics })

/** Each figure of turn 1 and of the later turns, as the median over rounds. */
function overRounds(list) {
  const group = (g) => Object.fromEntries(['ttftP50Ms', 'ttftP95Ms', 'promptTokens', 'cachedTokens'].map((k) => [k, medianOf(list, (x) => x[g][k])]))
  return { turn1: group('turn1'), later: group('later') }
}

/** How many replies were the same text on both sides (greedy, same model: most should be). */
function sameReplies(as, bs) {
  let same = 0
  let total = 0
  for (let i = 0; i < as.length; i++) {
    if (!as[i] || !bs[i]) continue
    for (const [key, reply] of Object.entries(as[i].replies)) {
      total++
      if (bs[i].replies[key] === reply) same++
    }
  }
  return { same, total }
}

/** The engine's prompt-cache counters the service exports, if any, as `name value` pairs. */
function cacheCounters(metrics) {
  if (!metrics) return '–'
  const keys = ['llm_prompt_tokens_total', 'llm_prompt_tokens_evaluated_total', 'llm_cached_tokens_total', 'llm_cache_hits_total']
  const names = [...keys, ...Object.keys(metrics).filter((k) => k.startsWith('llm_prompt_cache_'))]
  return names.filter((k) => k in metrics).map((k) => `${k.replace(/^llm_/, '')} ${metrics[k]}`).join(', ')
}

/**
 * The spill part's memory bound: about half of what `spillChats` chats' states take, so about
 * half of them must go to disk. A state's size is measured in the first part when its cache
 * held most of its chats (bytes ÷ states, memory and disk), else estimated from the model's KV
 * bytes per token (GGUF header) × the tokens a chat holds at its end; that overestimates
 * sliding-window models like Gemma 3, whose states keep only the window on most layers.
 */
function spillCacheMb(modelPath, firstPart) {
  if (spillCacheMbArg !== undefined) return { mb: Number(spillCacheMbArg), source: '--spill-cache-mb' }
  const m = (firstPart && firstPart.metrics) || {}
  const states = (m.llm_prompt_cache_entries || 0) + (m.llm_prompt_cache_disk_entries || 0)
  let perChat
  let source
  if (states >= Math.max(2, chatCount / 2)) {
    perChat = ((m.llm_prompt_cache_bytes || 0) + (m.llm_prompt_cache_disk_bytes || 0)) / states
    source = `the first part's prompt cache: bytes ÷ states (${states})`
  } else {
    const { readGgufMetadata, kvBytesPerToken } = require(path.join(servers.EXAMPLE, 'dist', 'scripts', 'gguf.js'))
    const chatTokens = (firstPart && firstPart.chatTokens) || 1400
    perChat = kvBytesPerToken(readGgufMetadata(modelPath)) * chatTokens
    source = `KV bytes per token (GGUF header) × ${chatTokens} tokens`
  }
  const mb = Math.max(1, Math.round((spillChats * perChat) / 2 / 2 ** 20))
  return { mb, source, perChatMb: perChat / 2 ** 20 }
}

/** Measured size of one cached state after a run (memory and disk tiers together), in MiB. */
function stateMb(metrics) {
  const m = metrics || {}
  const states = (m.llm_prompt_cache_entries || 0) + (m.llm_prompt_cache_disk_entries || 0)
  return states ? ((m.llm_prompt_cache_bytes || 0) + (m.llm_prompt_cache_disk_bytes || 0)) / states / 2 ** 20 : NaN
}

/** Turn 1 and the later turns, as table rows (no later row for one-turn chats). */
function turnGroups() {
  const groups = [['turn1', '1']]
  if (chatTurns > 1) groups.push(['later', chatTurns > 2 ? `2–${chatTurns}` : '2'])
  return groups
}

/** The first part on one model: the service and llama-server taking turns, round by round. */
async function compareChats(name, modelPath, entry, llamaServer) {
  const setup = CHAT_MODELS[name]
  const server = { modelPath, threads, parallel: chatSlots, contextSize: chatContext, maxTokens: chatTokens }
  const play = { language: setup.language, chatsToPlay: chatCount }
  log(`chats, ${name}: ${chatCount} chats × ${chatTurns} turns, ${chatSlots} at a time; persian-chat and llama-server taking turns, ${chatRounds} rounds`)
  const r = await interleaved(
    [
      { key: 'ours', run: () => playChats(() => servers.startService(entry, server), { ...play, withMetrics: true }) },
      { key: 'llama', run: () => playChats(() => servers.startLlamaServer(llamaServer, { ...server, extraArgs: setup.llamaServerArgs }), play) },
    ],
    chatRounds,
  )
  const lastOurs = r.ours.filter(Boolean).pop()
  return {
    name,
    ours: overRounds(r.ours),
    llama: overRounds(r.llama),
    ratio: {
      turn1: roundRatio(r.ours, r.llama, (x) => x.turn1.ttftP50Ms),
      later: roundRatio(r.ours, r.llama, (x) => x.later.ttftP50Ms),
    },
    replies: sameReplies(r.ours, r.llama),
    metrics: lastOurs ? lastOurs.metrics : null,
    chatTokens: lastOurs ? lastOurs.chatTokens : null,
    rounds: { ours: roundFigures(r.ours), llama: roundFigures(r.llama) },
  }
}

/**
 * The spill part on one model: our service alone (llama-server has no disk tier), with
 * `spillChats` chats and the memory cache capped at about half of their states.
 */
async function spillToDisk(name, modelPath, entry, firstPart) {
  const cap = spillCacheMb(modelPath, firstPart)
  const server = { modelPath, threads, parallel: chatSlots, contextSize: chatContext, maxTokens: chatTokens }
  log(`chats, ${name}: spill part, ${spillChats} chats with LLM_PROMPT_CACHE_MB=${cap.mb} (${cap.source}), ${chatRounds} rounds`)
  const run = async () => {
    // A fresh disk tier per run: states left by an earlier run would be cache hits.
    const dir = fs.mkdtempSync(path.join(servers.runDirectory(), 'prompt-cache-'))
    const env = { LLM_PROMPT_CACHE_MB: String(cap.mb), LLM_PROMPT_CACHE_DIR: dir }
    try {
      const play = { language: CHAT_MODELS[name].language, chatsToPlay: spillChats, withMetrics: true }
      return await playChats(() => servers.startService(entry, { ...server, env }), play)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }
  const r = await interleaved([{ key: 'ours', run }], chatRounds)
  const last = r.ours.filter(Boolean).pop()
  return { name, cap, ours: overRounds(r.ours), metrics: last ? last.metrics : null, rounds: { ours: roundFigures(r.ours) } }
}

function printChats(rows, spills) {
  const { LLAMA_CPP_BUILD } = require('../scripts/llama-server')
  console.log(`\nMany chats, few slots: ${chatCount} chats × ${chatTurns} turns, ~1,100-token histories (English for SmolLM2, Persian for Gemma 3), ${chatSlots} clients on ${chatSlots} slots taking the turns round-robin (every chat's turn 1, then every chat's turn 2, …), ${chatTokens}-token greedy replies, ${threads} threads, context ${chatContext} per slot. Our persian-chat service vs llama-server b${LLAMA_CPP_BUILD} (--cache-ram default), each started fresh per round; ${chatRounds} rounds taking turns. TTFT = request sent → first SSE text; p50/p95 over the turn's requests, then median over rounds; ratio = median of per-round ratios\n`)
  console.log('| model | turns | TTFT p50 ours (ms) | TTFT p50 llama-server (ms) | ours ÷ llama-server | TTFT p95 ours / llama-server (ms) | prompt tokens ours / llama-server | cached tokens ours / llama-server |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const row of rows) {
    for (const [group, label] of turnGroups()) {
      const o = row.ours[group]
      const l = row.llama[group]
      console.log(
        `| ${row.name} | ${label} | ${f(o.ttftP50Ms, 0)} | ${f(l.ttftP50Ms, 0)} | ${f(row.ratio[group], 2)}× | ${f(o.ttftP95Ms, 0)} / ${f(l.ttftP95Ms, 0)} | ${f(o.promptTokens, 0)} / ${f(l.promptTokens, 0)} | ${f(o.cachedTokens, 0)} / ${f(l.cachedTokens, 0)} |`,
      )
    }
  }
  for (const row of rows) {
    console.log(`\n${row.name}: identical replies on both sides: ${row.replies.same} of ${row.replies.total}; our engine's counters (last round): ${cacheCounters(row.metrics)}`)
  }
  if (!spills.length) return
  console.log(`\nSpill to disk: our service alone, ${spillChats} chats × ${chatTurns} turns (otherwise as above), its memory prompt cache capped at about half of what the chats' states take (LLM_PROMPT_CACHE_MB), disk tier in a temporary folder (LLM_PROMPT_CACHE_DIR); medians over ${chatRounds} rounds\n`)
  console.log('| model | LLM_PROMPT_CACHE_MB | turns | TTFT p50 (ms) | TTFT p95 (ms) | prompt tokens | cached tokens |')
  console.log('|---|---|---|---|---|---|---|')
  for (const s of spills) {
    for (const [group, label] of turnGroups()) {
      const o = s.ours[group]
      console.log(`| ${s.name} | ${s.cap.mb} | ${label} | ${f(o.ttftP50Ms, 0)} | ${f(o.ttftP95Ms, 0)} | ${f(o.promptTokens, 0)} | ${f(o.cachedTokens, 0)} |`)
    }
  }
  for (const s of spills) {
    const perChat = s.cap.perChatMb ? `, ${f(s.cap.perChatMb, 1)} MiB per chat` : ''
    console.log(`\n${s.name}: cache bound from ${s.cap.source}${perChat}; measured after the run: ${f(stateMb(s.metrics), 1)} MiB per cached state; our engine's counters (last round): ${cacheCounters(s.metrics)}`)
  }
}

async function chats() {
  for (const name of models) {
    if (!CHAT_MODELS[name]) throw new Error(`the chats suite has no chat setup for model '${name}' (it knows ${Object.keys(CHAT_MODELS).join(', ')})`)
  }
  const llamaServer = require('../scripts/llama-server').ensureLlamaServer().server
  const entry = servers.buildService()
  const rows = []
  const spills = []
  for (const name of models) {
    const modelPath = ensureModel(name)
    const row = await compareChats(name, modelPath, entry, llamaServer)
    rows.push(row)
    if (withSpill) spills.push(await spillToDisk(name, modelPath, entry, row))
  }
  printChats(rows, spills)
  const failed = [...rows.flatMap((r) => [...r.rounds.ours, ...r.rounds.llama]), ...spills.flatMap((s) => s.rounds.ours)].some((x) => !x)
  if (failed) log(`a run failed; the servers' logs are in ${servers.runDirectory()}`)
  else servers.removeRunDirectory()
  return { rows, spills }
}

/**
 * Engine.connect against a plain fetch + SSE client on the same llama-server (what our client
 * costs), and the in-process engine against that llama-server (what a user would run instead),
 * all taking turns. One llama-server per model, started once: `remote-slots` slots.
 */
async function remote() {
  const { ensureLlamaServer } = require('../scripts/llama-server')
  const { server: binary } = ensureLlamaServer()
  const levels = arg('remote-levels', '1,8')
  const remoteTokens = Number(arg('remote-tokens', 96))
  const slots = Number(arg('remote-slots', 8))
  const prompts = JSON.stringify(STORY_PROMPTS)
  const rows = []
  for (const name of arg('models', 'smollm2').split(',')) {
    const modelPath = ensureModel(name)
    const server = await servers.startLlamaServer(binary, { modelPath, threads, parallel: slots, contextSize: 1024 })
    try {
      log(`remote, ${name}: Engine.connect, plain fetch client, in-process engine, taking turns, ${rounds} rounds`)
      const client = (mode) => () => levelSummary(runJson(process.execPath, [path.join(__dirname, 'remote-client.js'), server.url, mode, String(remoteTokens), String(reps), levels, prompts]))
      const r = await interleaved([
        { key: 'connect', run: client('engine') },
        { key: 'fetch', run: client('fetch') },
        {
          key: 'local',
          run: () => levelSummary(runJson(process.execPath, [path.join(__dirname, 'ours-concurrency.js'), modelPath, String(remoteTokens), String(reps), String(threads), String(slots), levels, prompts])),
        },
      ])
      for (const level of levels.split(',')) {
        const tps = (x) => x[level].aggregateTps
        const ttft = (x) => x[level].ttftP50Ms
        rows.push({
          name,
          level,
          connectTps: medianOf(r.connect, tps),
          fetchTps: medianOf(r.fetch, tps),
          localTps: medianOf(r.local, tps),
          connectOverFetch: roundRatio(r.connect, r.fetch, tps),
          localOverServer: roundRatio(r.local, r.fetch, tps),
          ttftConnect: medianOf(r.connect, ttft),
          ttftFetch: medianOf(r.fetch, ttft),
          ttftLocal: medianOf(r.local, ttft),
        })
      }
    } finally {
      await server.stop()
    }
  }
  const cpu = cpuName()
  console.log(`\nRemote: llama-server b${require('../scripts/llama-server').LLAMA_CPP_BUILD} with ${slots} slots, ${threads} threads; ${remoteTokens} tokens per stream, greedy; ${rounds} rounds taking turns (each: one warm-up, ${reps} measured); ${cpu}\n`)
  console.log('| model | streams | Engine.connect tok/s | fetch + SSE tok/s | connect ÷ fetch | TTFT p50 connect / fetch (ms) | in-process tok/s | in-process ÷ llama-server | TTFT p50 in-process (ms) |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const x of rows) {
    console.log(
      `| ${x.name} | ${x.level} | ${f(x.connectTps)} | ${f(x.fetchTps)} | ${f(x.connectOverFetch, 3)}× | ${f(x.ttftConnect)} / ${f(x.ttftFetch)} | ${f(x.localTps)} | ${f(x.localOverServer, 2)}× | ${f(x.ttftLocal)} |`,
    )
  }
  return rows
}


/** llama-bench's JSON output (an array) as { pp, tg } tokens/s, the mean of its repetitions. */
function runLlamaBench(binary, modelPath, benchReps) {
  const r = spawnSync(binary, ['-m', modelPath, '-t', String(threads), '-p', '512', '-n', '128', '-r', String(benchReps), '-o', 'json'], { encoding: 'utf8', maxBuffer: 16 << 20 })
  if (r.status !== 0) throw new Error(`llama-bench failed: ${(r.stderr || '').slice(-2000)}`)
  const tests = JSON.parse(r.stdout)
  const pick = (t) => tests.find(t)
  return { pp: pick((t) => t.n_prompt > 0 && t.n_gen === 0).avg_ts, tg: pick((t) => t.n_gen > 0 && t.n_prompt === 0).avg_ts }
}

/** prom-client's event-loop delay sampling interval (its default, which the service keeps). */
const PROM_CLIENT_LOOP_RESOLUTION_MS = 10

/** The service's event-loop delay p99 (ms) since the last scrape (prom-client resets it on each). */
async function serviceLoopDelayP99(url) {
  // A second try: the keep-alive socket of the last scrape may have been closed by the server
  // while this process sat in spawnSync.
  const scrape = () => fetch(`${url}/metrics`).then((r) => r.text())
  const text = await scrape().catch(scrape)
  const m = /^nodejs_eventloop_lag_p99_seconds (\S+)$/m.exec(text)
  return m ? Number(m[1]) * 1000 : NaN
}

/**
 * llama.cpp's own programs as the baselines (--suites server), all taking turns per round:
 *   - the persian-chat service and llama-server, each started fresh with the same slots,
 *     context, threads and chat template, driven over HTTP by bench/http-streams.js at every
 *     level (N streamed chat completions at once);
 *   - in-process stream() through the same chat path (bench/ours-concurrency.js, chat mode);
 *   - llama-bench's pp512 and tg128 against generate() on the same tests (bench/ours-pp-tg.js).
 */
async function serverSuite() {
  const { ensureLlamaServer, LLAMA_CPP_BUILD } = require('../scripts/llama-server')
  const { server: binary, bench: llamaBench } = ensureLlamaServer()
  const entry = servers.buildService()
  const levels = arg('server-levels', '1,4,8,16')
  const levelList = levels.split(',').map(Number)
  const slots = Number(arg('server-slots', Math.max(...levelList)))
  const serverTokens = Number(arg('server-tokens', 96))
  const serverRounds = Number(arg('rounds', 3))
  const prompts = JSON.stringify(SERVER_PROMPTS)
  const rows = []
  for (const name of models) {
    if (!CHAT_MODELS[name]) throw new Error(`the server suite has no chat setup for model '${name}' (it knows ${Object.keys(CHAT_MODELS).join(', ')})`)
    const modelPath = ensureModel(name)
    const config = { modelPath, threads, parallel: slots, contextSize: 1024, maxTokens: serverTokens }
    const overHttp = async (start, withLoopDelay) => {
      const server = await start()
      try {
        if (withLoopDelay) await serviceLoopDelayP99(server.url)
        const result = runJson(process.execPath, [path.join(__dirname, 'http-streams.js'), server.url, String(serverTokens), String(reps), levels, prompts])
        const out = levelSummary(result)
        for (const n of levelList) out[n].chunksPerToken = median(result.levels[n].chunksPerToken)
        if (withLoopDelay) out.loopDelayP99Ms = await serviceLoopDelayP99(server.url)
        return out
      } catch (e) {
        throw new Error(`${e.message}\n${server.name} log (${server.logFile}):\n${server.logTail(1500)}`)
      } finally {
        await server.stop()
      }
    }
    log(`server, ${name}: persian-chat and llama-server over HTTP (${slots} slots each), in-process stream(), llama-bench and generate() taking turns, ${serverRounds} rounds`)
    const r = await interleaved(
      [
        { key: 'service', run: () => overHttp(() => servers.startService(entry, config), true) },
        // STREAM_INTERVAL_MS=0: one SSE event per token, as llama-server sends them.
        { key: 'perToken', run: () => overHttp(() => servers.startService(entry, { ...config, env: { STREAM_INTERVAL_MS: '0' } }), false) },
        { key: 'llama', run: () => overHttp(() => servers.startLlamaServer(binary, { ...config, extraArgs: CHAT_MODELS[name].llamaServerArgs }), false) },
        {
          key: 'local',
          run: () => {
            const x = runJson(process.execPath, [path.join(__dirname, 'ours-concurrency.js'), modelPath, String(serverTokens), String(reps), String(threads), String(slots), levels, prompts, 'chat'])
            return { ...levelSummary(x), loopDelayP99Ms: x.loopDelayP99Ms, loopLevel: x.loopLevel, loopResolutionMs: x.loopResolutionMs }
          },
        },
        { key: 'llamaBench', run: () => runLlamaBench(llamaBench, modelPath, Math.max(2, reps)) },
        {
          key: 'ppTg',
          run: () => {
            const x = runJson(process.execPath, [path.join(__dirname, 'ours-pp-tg.js'), modelPath, String(Math.max(2, reps)), String(threads)])
            return { pp: median(x.pp), tg: median(x.tg), tgTokens: Math.min(...x.tgTokens) }
          },
        },
      ],
      serverRounds,
    )
    const row = { name, levels: {}, rounds: r }
    for (const n of levelList) {
      const tps = (x) => x[n].aggregateTps
      const ttft = (x) => x[n].ttftP50Ms
      row.levels[n] = {
        serviceTps: medianOf(r.service, tps),
        llamaTps: medianOf(r.llama, tps),
        localTps: medianOf(r.local, tps),
        serviceOverLlama: roundRatio(r.service, r.llama, tps),
        perTokenTps: medianOf(r.perToken, tps),
        perTokenOverLlama: roundRatio(r.perToken, r.llama, tps),
        ttftPerToken: medianOf(r.perToken, ttft),
        serviceOverLocal: roundRatio(r.service, r.local, tps),
        ttftService: medianOf(r.service, ttft),
        ttftLlama: medianOf(r.llama, ttft),
        ttftLocal: medianOf(r.local, ttft),
        chunksPerToken: medianOf(r.service, (x) => x[n].chunksPerToken),
      }
    }
    row.serviceLoopDelayP99Ms = medianOf(r.service, (x) => x.loopDelayP99Ms)
    row.localLoopDelayP99Ms = medianOf(r.local, (x) => x.loopDelayP99Ms)
    row.localLoopLevel = r.local.find(Boolean)?.loopLevel
    row.localLoopResolutionMs = r.local.find(Boolean)?.loopResolutionMs
    row.pp = { ours: medianOf(r.ppTg, (x) => x.pp), llamaBench: medianOf(r.llamaBench, (x) => x.pp), ratio: roundRatio(r.ppTg, r.llamaBench, (x) => x.pp) }
    row.tg = { ours: medianOf(r.ppTg, (x) => x.tg), llamaBench: medianOf(r.llamaBench, (x) => x.tg), ratio: roundRatio(r.ppTg, r.llamaBench, (x) => x.tg) }
    row.tgTokens = Math.min(...r.ppTg.filter(Boolean).map((x) => x.tgTokens))
    rows.push(row)
  }
  const cpu = cpuName()
  console.log(`\nServer: the persian-chat service vs llama-server b${LLAMA_CPP_BUILD}, both over HTTP (/v1/chat/completions, SSE), ${slots} slots of 1024 tokens each, ${threads} threads, ${serverTokens} tokens per stream, greedy, prompt cache on (the default of both), the same system and user message to each; the service with its default STREAM_INTERVAL_MS and again with 0 (one event per token, as llama-server sends); in-process = stream() in one Node process on the same chat path. ${serverRounds} rounds taking turns (each: a fresh process, one warm-up, then ${reps} measured repetitions per level, more at low levels so that every level has at least ${MIN_TTFT_SAMPLES} streams' TTFT); tok/s and TTFT = medians over rounds, ratios = median of per-round ratios. ${cpu}; ${describeBuild()}\n`)
  console.log('| model | streams | service tok/s | llama-server tok/s | service ÷ llama-server | TTFT p50 service / llama-server (ms) | in-process tok/s | service ÷ in-process | TTFT p50 in-process (ms) | SSE events per token | one event per token: tok/s, ÷ llama-server, TTFT p50 |')
  console.log('|---|---|---|---|---|---|---|---|---|---|---|')
  for (const row of rows) {
    for (const n of levelList) {
      const x = row.levels[n]
      console.log(
        `| ${row.name} | ${n} | ${f(x.serviceTps)} | ${f(x.llamaTps)} | ${f(x.serviceOverLlama, 2)}× | ${f(x.ttftService, 0)} / ${f(x.ttftLlama, 0)} | ${f(x.localTps)} | ${f(x.serviceOverLocal, 2)}× | ${f(x.ttftLocal, 0)} | ${f(x.chunksPerToken, 2)} | ${f(x.perTokenTps)}, ${f(x.perTokenOverLlama, 2)}×, ${f(x.ttftPerToken, 0)} ms |`,
      )
    }
  }
  console.log(`\nllama-bench (-t ${threads} -p 512 -n 128, its defaults otherwise) vs generate() on the same tests (one slot, prompt cache off); tok/s = medians over rounds, ratio = median of per-round ratios\n`)
  console.log('| model | pp512 generate() | pp512 llama-bench | ratio | tg128 generate() | tg128 llama-bench | ratio |')
  console.log('|---|---|---|---|---|---|---|')
  for (const row of rows) {
    console.log(`| ${row.name} | ${f(row.pp.ours)} | ${f(row.pp.llamaBench)} | ${f(row.pp.ratio, 2)}× | ${f(row.tg.ours)} | ${f(row.tg.llamaBench)} | ${f(row.tg.ratio, 2)}× |`)
  }
  for (const row of rows) {
    const short = row.tgTokens < 128 ? ` (warning: a tg run ended after ${row.tgTokens} tokens)` : ''
    // Node's monitorEventLoopDelay records the time between two timer runs, so a p99 holds the
    // sampling interval itself.
    console.log(
      `\n${row.name}: event-loop delay p99 while streaming, beyond the sampling interval: the service ${f(row.serviceLoopDelayP99Ms - PROM_CLIENT_LOOP_RESOLUTION_MS, 2)} ms (prom-client, all levels), in-process ${f(row.localLoopDelayP99Ms - row.localLoopResolutionMs, 2)} ms (${row.localLoopLevel} streams)${short}`,
    )
  }
  return rows.map(({ rounds: _r, ...row }) => row)
}

/**
 * Embeddings (--suites embed): the same short texts through napi-llama's embedding engine, all
 * in one embed() call and one text per call, and through node-llama-cpp's embedding context,
 * which embeds one text per call. all-MiniLM-L6-v2 (a BERT embedding model, converted by the
 * fetch script) and SmolLM2 with mean pooling (a decoder used for embeddings).
 */
async function embedSuite(nlc) {
  const count = Number(arg('embed-texts', 256))
  const rows = []
  for (const name of arg('embed-models', 'minilm,smollm2').split(',')) {
    const modelPath = ensureModel(name)
    log(`embed, ${name}: ${count} texts, batched, one per call${nlc ? ', node-llama-cpp' : ''}, taking turns, ${rounds} rounds`)
    const summary = (result) => ({ textsPerSecond: median(result.textsPerSecond) })
    const ours = (mode) => () => summary(runJson(process.execPath, [path.join(__dirname, 'ours-embed.js'), modelPath, String(threads), String(reps), mode, String(count)]))
    const runners = [
      { key: 'batched', run: ours('batched') },
      { key: 'single', run: ours('single') },
    ]
    if (nlc) runners.push({ key: 'nlc', run: () => summary(runJson(process.execPath, [path.join(__dirname, 'nlc-embed.js'), modelPath, String(threads), String(reps), String(count)])) })
    const r = await interleaved(runners)
    const tps = (x) => x.textsPerSecond
    rows.push({
      name,
      batched: medianOf(r.batched, tps),
      single: medianOf(r.single, tps),
      nlc: nlc ? medianOf(r.nlc, tps) : NaN,
      batchedOverSingle: roundRatio(r.batched, r.single, tps),
      batchedOverNlc: nlc ? roundRatio(r.batched, r.nlc, tps) : NaN,
      singleOverNlc: nlc ? roundRatio(r.single, r.nlc, tps) : NaN,
    })
  }
  console.log(`\nEmbeddings: ${count} short texts (about a dozen tokens each), mean pooling, ${threads} threads; ${rounds} rounds taking turns (each: one warm-up, median of ${reps}); texts/s = median over rounds, ratios = median of per-round ratios; ${cpuName()}\n`)
  console.log('| model | embed() all at once texts/s | embed() one per call texts/s | node-llama-cpp texts/s | batched ÷ one per call | batched ÷ node-llama-cpp | one per call ÷ node-llama-cpp |')
  console.log('|---|---|---|---|---|---|---|')
  for (const x of rows) {
    console.log(`| ${x.name} | ${f(x.batched)} | ${f(x.single)} | ${f(x.nlc)} | ${f(x.batchedOverSingle, 2)}× | ${f(x.batchedOverNlc, 2)}× | ${f(x.singleOverNlc, 2)}× |`)
  }
  return rows
}

/**
 * Structured replies (--suites tools): what reading a reply with llama.cpp's chat parser after
 * every token (a thinking template's reasoning apart), and a strict tool-call grammar on top,
 * cost against a plain chat reply, on SmolLM2, taking turns. Decode tokens/s are the engine's
 * own (completion tokens over generate time). A tool call ends when its JSON closes, so its
 * replies are short: compare its rate, not its length.
 */
async function toolsSuite() {
  const count = Number(arg('tools-tokens', 128))
  const modelPath = ensureModel('smollm2')
  log(`tools, smollm2: plain, thinking (parsed), tool call (grammar + parsed), ${count} tokens, taking turns, ${rounds} rounds`)
  const summary = (result) => ({ tokensPerSecond: median(result.tokensPerSecond) })
  const ours = (mode) => () =>
    summary(runJson(process.execPath, [path.join(__dirname, 'ours-tools.js'), modelPath, String(threads), String(reps), mode, String(count)]))
  const r = await interleaved([
    { key: 'plain', run: ours('plain') },
    { key: 'thinking', run: ours('thinking') },
    { key: 'toolcall', run: ours('toolcall') },
  ])
  const tps = (x) => x.tokensPerSecond
  const row = {
    plain: medianOf(r.plain, tps),
    thinking: medianOf(r.thinking, tps),
    toolcall: medianOf(r.toolcall, tps),
    thinkingOverPlain: roundRatio(r.thinking, r.plain, tps),
    toolcallOverPlain: roundRatio(r.toolcall, r.plain, tps),
  }
  console.log(`\nStructured replies: SmolLM2, greedy, up to ${count} tokens, ${threads} threads; ${rounds} rounds taking turns (each: one warm-up, median of ${reps}); decode tokens/s = median over rounds, ratios = median of per-round ratios; ${cpuName()}\n`)
  console.log('| plain tok/s | thinking, parsed tok/s | tool call, grammar + parsed tok/s | thinking ÷ plain | tool call ÷ plain |')
  console.log('|---|---|---|---|---|')
  console.log(`| ${f(row.plain)} | ${f(row.thinking)} | ${f(row.toolcall)} | ${f(row.thinkingOverPlain, 2)}× | ${f(row.toolcallOverPlain, 2)}× |`)
  return row
}

/** A source build of the addon with NAPI_LLAMA_CPU=`cpu`, in its own cached target directory. */
function sourceBuild(cpu) {
  const { llamaCppSysVersion, cacheRoot } = require('../scripts/build-env')
  const cache = cacheRoot()
  // The default build shares the install's target directory; another goes to its own cache.
  const base = { ...process.env }
  delete base.NAPI_LLAMA_NATIVE // the older switch would turn every build into `native`
  const own = cpu === (base.NAPI_LLAMA_CPU || 'auto')
  const dir = own ? targetDir() : path.join(cache, `bench-${cpu}-llama-cpp-sys-2-${llamaCppSysVersion()}`)
  const env = buildEnv({ ...base, NAPI_LLAMA_CPU: cpu, CARGO_TARGET_DIR: dir })
  forgetStaleLlamaBuilds(env)
  log(`building the ${cpu} source build (${describeBuild(env)}) in ${env.CARGO_TARGET_DIR}`)
  const triple = targetTriple()
  const r = spawnSync('cargo', ['build', '--release', '--lib', '--target', triple], { cwd: ROOT, env, stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`cargo build (${cpu}) failed`)
  const out = path.join(targetDir(), 'bench-addons', cpu)
  fs.mkdirSync(out, { recursive: true })
  const dest = path.join(out, 'napi-llama.node')
  fs.copyFileSync(path.join(env.CARGO_TARGET_DIR, triple, 'release', require('../scripts/build-env').libraryName()), dest)
  return dest
}

/** The portable build, placed as its platform package would hold it. */
function portableBuild() {
  const { buildPortable, place } = require('../scripts/portable-build')
  const dir = path.join(targetDir(), 'bench-addons', 'portable')
  fs.rmSync(dir, { recursive: true, force: true })
  place(buildPortable({ vulkan: !process.argv.includes('--no-vulkan') }), dir, 'napi-llama.node')
  return path.join(dir, 'napi-llama.node')
}

/**
 * The portable build vs source builds (--suites portable): llama-bench's pp512 and tg128
 * through generate() (bench/ours-pp-tg.js) with each addon, taking turns, per model.
 */
async function portableSuite() {
  const addons = { portable: portableBuild(), native: sourceBuild('native'), auto: sourceBuild('auto') }
  const rows = []
  for (const name of models) {
    const modelPath = ensureModel(name)
    log(`portable, ${name}: portable vs native vs auto builds, pp512 + tg128, taking turns, ${rounds} rounds`)
    const runner = (key) => ({
      key,
      run: () => {
        const out = runJson(process.execPath, [path.join(__dirname, 'ours-pp-tg.js'), modelPath, String(reps), String(threads)], { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: addons[key] })
        return { pp: median(out.pp), tg: median(out.tg) }
      },
    })
    const r = await interleaved(Object.keys(addons).map(runner))
    const row = { name }
    for (const key of Object.keys(addons)) row[key] = { pp: medianOf(r[key], (x) => x.pp), tg: medianOf(r[key], (x) => x.tg) }
    for (const t of ['pp', 'tg']) {
      row[`portableOverNative_${t}`] = roundRatio(r.portable, r.native, (x) => x[t])
      row[`autoOverNative_${t}`] = roundRatio(r.auto, r.native, (x) => x[t])
    }
    rows.push(row)
  }
  console.log(`\nPortable build vs source builds: pp512 and tg128 through generate(), ${threads} threads; ${rounds} rounds taking turns (each: one warm-up, median of ${reps}); tok/s = median over rounds, ratios = median of per-round ratios; ${cpuName()}\n`)
  console.log('| model | portable pp512 / tg128 | native pp512 / tg128 | auto pp512 / tg128 | portable ÷ native pp / tg | auto ÷ native pp / tg |')
  console.log('|---|---|---|---|---|---|')
  for (const r of rows) {
    console.log(`| ${r.name} | ${f(r.portable.pp)} / ${f(r.portable.tg)} | ${f(r.native.pp)} / ${f(r.native.tg)} | ${f(r.auto.pp)} / ${f(r.auto.tg)} | ${f(r.portableOverNative_pp, 2)}× / ${f(r.portableOverNative_tg, 2)}× | ${f(r.autoOverNative_pp, 2)}× / ${f(r.autoOverNative_tg, 2)}× |`)
  }
  return rows
}

function cpuName() {
  try {
    return (fs.readFileSync('/proc/cpuinfo', 'utf8').match(/model name\s*:\s*(.*)/) || [])[1] || 'unknown CPU'
  } catch {
    return 'unknown CPU'
  }
}

async function main() {
  const nlc = withNlc && ['single', 'concurrency', 'embed'].some((s) => suites.includes(s)) && ensureNodeLlamaCpp()
  const results = { date: new Date().toISOString(), tokens, concurrentTokens, threads, rounds, reps }
  if (suites.includes('single')) results.single = await single(nlc)
  if (suites.includes('concurrency')) results.concurrency = await concurrency(nlc)
  if (suites.includes('eventloop')) results.eventLoop = await eventLoop()
  if (suites.includes('cache')) results.cache = cache()
  if (suites.includes('chats')) results.chats = await chats()
  if (suites.includes('remote')) results.remote = await remote()
  if (suites.includes('server')) results.server = await serverSuite()
  if (suites.includes('embed')) results.embed = await embedSuite(nlc)
  if (suites.includes('tools')) results.tools = await toolsSuite()
  if (suites.includes('portable')) results.portable = await portableSuite()
  const out = path.join(__dirname, 'results', 'latest.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify(results, null, 2))
  log(`wrote ${path.relative(ROOT, out)}`)
}

main().catch((e) => {
  log(e.stack || e.message)
  process.exit(1)
})
