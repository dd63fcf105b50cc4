#!/usr/bin/env node
// `npm run bench`: single-stream decode speed and time to first token, on SmolLM2 and Gemma 3,
// for napi-llama's stream(), a plain Rust loop over llama-cpp-2 in the same build ("raw"), and
// node-llama-cpp 3.22.1 — all measured in this run, on this machine, and printed as ratios.
//   npm run bench -- [--reps 5] [--tokens 128] [--threads 2] [--models smollm2,gemma3] [--no-nlc]
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

function buildRaw() {
  const triple = targetTriple()
  const env = buildEnv()
  log('building the raw llama-cpp-2 loop (cargo example, same flags as the addon)')
  const r = spawnSync('cargo', ['build', '--release', '--example', 'raw_decode', '--target', triple], { cwd: ROOT, env, stdio: 'inherit' })
  if (r.status !== 0) throw new Error('cargo build --example raw_decode failed')
  return path.join(targetDir(env), triple, 'release', 'examples', 'raw_decode')
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

function main() {
  const raw = buildRaw()
  const nlc = withNlc && ensureNodeLlamaCpp()
  const rows = []
  for (const name of models) {
    const modelPath = ensureModel(name)
    const args = [modelPath, String(tokens), String(reps), String(threads), PROMPT]
    log(`${name}: raw llama-cpp-2 loop`)
    const r = summarize(runJson(raw, args))
    log(`${name}: napi-llama stream()`)
    const o = summarize(runJson(process.execPath, [path.join(__dirname, 'ours.js'), ...args]))
    let n = null
    if (nlc) {
      log(`${name}: node-llama-cpp 3.22.1`)
      try {
        n = summarize(runJson(process.execPath, [path.join(__dirname, 'node-llama-cpp.js'), ...args]))
      } catch (e) {
        log(`node-llama-cpp failed: ${e.message}`)
      }
    }
    rows.push({ name, raw: r, ours: o, nlc: n })
  }
  const f = (x, d = 1) => (x == null ? '–' : x.toFixed(d))
  console.log(`\nDecode, ${tokens} tokens, ${threads} threads, median of ${reps} (after one warm-up); prompt: "${PROMPT}"\n`)
  console.log('| model | napi-llama stream() tok/s | raw llama-cpp-2 tok/s | node-llama-cpp tok/s | ours ÷ raw | ours ÷ node-llama-cpp | TTFT ours / raw / nlc (ms) | event-loop p99 (ms) |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const { name, raw: r, ours: o, nlc: n } of rows) {
    console.log(
      `| ${name} | ${f(o.decodeTps)} | ${f(r.decodeTps)} | ${f(n && n.decodeTps)} | ${f(o.decodeTps / r.decodeTps, 2)}× | ${n ? f(o.decodeTps / n.decodeTps, 2) + '×' : '–'} | ${f(o.ttftMs)} / ${f(r.ttftMs)} / ${f(n && n.ttftMs)} | ${f(o.loopDelayP99Ms, 2)} |`,
    )
  }
  const out = path.join(__dirname, 'results', 'latest.json')
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(out, JSON.stringify({ date: new Date().toISOString(), tokens, threads, reps, rows }, null, 2))
  log(`wrote ${path.relative(ROOT, out)}`)
}

main()
