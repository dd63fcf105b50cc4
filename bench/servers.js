// The HTTP servers the chats suite (bench/run.js) measures, each started fresh for one
// measurement and stopped after it, so no cache carries over from one round to the next:
//   - the persian-chat service (examples/persian-chat), our engine behind Express;
//   - llama.cpp's own llama-server (scripts/llama-server.js builds it), what a user would run
//     instead.
// Both listen on a free loopback port. Their output goes to a log file, not a pipe: the
// orchestrator blocks in spawnSync while the client runs, and a full pipe would stall a server.
'use strict'

const fs = require('node:fs')
const net = require('node:net')
const os = require('node:os')
const path = require('node:path')
const { spawn, spawnSync } = require('node:child_process')
const { ROOT } = require('../scripts/build-env')

const EXAMPLE = path.join(ROOT, 'examples', 'persian-chat')
const READY_TIMEOUT_MS = 180_000

function log(msg) {
  process.stderr.write(`[bench] ${msg}\n`)
}

let runDir = null

/** A folder for this run's server logs and prompt-cache disk tiers, made on first use. */
function runDirectory() {
  if (!runDir) runDir = fs.mkdtempSync(path.join(os.tmpdir(), 'napi-llama-chats-'))
  return runDir
}

/** Removes the run folder (server logs); kept when a run failed, for its logs. */
function removeRunDirectory() {
  if (runDir) fs.rmSync(runDir, { recursive: true, force: true })
  runDir = null
}

/** Servers still running: killed when the orchestrator exits or is interrupted, so none is left behind. */
const running = new Set()

function track(child) {
  if (!track.installed) {
    track.installed = true
    process.on('exit', () => {
      for (const c of running) c.kill('SIGKILL')
    })
    for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(130))
  }
  running.add(child)
  child.once('exit', () => running.delete(child))
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.once('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

/**
 * Compiles the service's TypeScript (what its `npm start` does first), so the suite measures
 * the tree as it is. If that fails, an earlier dist/ is used, with a warning.
 */
function buildService() {
  if (!fs.existsSync(path.join(EXAMPLE, 'node_modules', 'express'))) {
    throw new Error('the persian-chat service is not installed: run `npm install` in examples/persian-chat')
  }
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: EXAMPLE, encoding: 'utf8' })
  const entry = path.join(EXAMPLE, 'dist', 'src', 'server.js')
  if (r.status !== 0) {
    if (!fs.existsSync(entry)) throw new Error(`building examples/persian-chat failed:\n${r.stdout}${r.stderr}`)
    log(`warning: building examples/persian-chat failed, using its earlier dist/:\n${(r.stdout + r.stderr).slice(-1000)}`)
  }
  return entry
}

class Server {
  constructor(name, child, url, logFile) {
    this.name = name
    this.child = child
    this.url = url
    this.logFile = logFile
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  }

  logTail(chars = 3000) {
    try {
      return fs.readFileSync(this.logFile, 'utf8').slice(-chars)
    } catch {
      return ''
    }
  }

  /** Polls GET /health until 200 (both servers answer 503 while the model loads). */
  async ready() {
    const deadline = Date.now() + READY_TIMEOUT_MS
    let exited = null
    this.exited.then((e) => (exited = e))
    for (;;) {
      if (exited) throw new Error(`${this.name} exited (${exited.code ?? exited.signal}) before it was ready:\n${this.logTail()}`)
      try {
        const res = await fetch(`${this.url}/health`)
        if (res.status === 200) return
      } catch {} // not listening yet
      if (Date.now() > deadline) throw new Error(`${this.name} was not ready after ${READY_TIMEOUT_MS / 1000} s:\n${this.logTail()}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }

  /** SIGTERM (both shut down cleanly on it), then SIGKILL after 15 s. */
  async stop() {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return
    this.child.kill('SIGTERM')
    const timer = setTimeout(() => this.child.kill('SIGKILL'), 15_000)
    await this.exited
    clearTimeout(timer)
  }
}

async function launch(name, cmd, args, env) {
  const port = await freePort()
  const logFile = path.join(runDirectory(), `${name}-${port}.log`)
  const out = fs.openSync(logFile, 'w')
  const child = spawn(cmd, args(port), { cwd: runDirectory(), env: env(port), stdio: ['ignore', out, out] })
  fs.closeSync(out)
  track(child)
  const server = new Server(name, child, `http://127.0.0.1:${port}`, logFile)
  try {
    await server.ready()
  } catch (e) {
    await server.stop()
    throw e
  }
  return server
}

/**
 * The persian-chat service on `modelPath`: `parallel` slots of `contextSize` tokens each,
 * `threads` threads, greedy and without a repeat penalty (llama-server's defaults), no rate
 * limit or request log. `env` adds variables (the prompt-cache settings). Its working directory
 * is the run folder, so a developer's examples/persian-chat/.env does not apply.
 */
function startService(entry, { modelPath, threads, parallel, contextSize, maxTokens, env = {} }) {
  return launch('persian-chat', process.execPath, () => [entry], (port) => ({
    ...process.env,
    PORT: String(port),
    HOST: '127.0.0.1',
    LLM_MODEL_PATH: modelPath,
    LLM_THREADS: String(threads),
    LLM_PARALLEL: String(parallel),
    LLM_CONTEXT_SIZE: String(contextSize),
    LLM_MAX_TOKENS: String(Math.max(maxTokens, 512)),
    LLM_TEMPERATURE: '0',
    LLM_REPEAT_PENALTY: '1',
    LLM_TIMEOUT_MS: '600000',
    RATE_LIMIT_PER_MINUTE: '0',
    LOG_REQUESTS: 'false',
    ...env,
  }))
}

/**
 * llama-server on the same model, threads (prompt and generation) and slots; its context is
 * the total for all slots, so `parallel × contextSize`. `--cache-ram` keeps its default: that
 * host-memory prompt cache is what the comparison is about. `extraArgs`: e.g. the chat template.
 */
function startLlamaServer(binary, { modelPath, threads, parallel, contextSize, extraArgs = [] }) {
  return launch(
    'llama-server',
    binary,
    (port) => [
      '-m', modelPath,
      '-t', String(threads),
      '-tb', String(threads),
      '-np', String(parallel),
      '-c', String(parallel * contextSize),
      '--host', '127.0.0.1',
      '--port', String(port),
      ...extraArgs,
    ],
    () => process.env,
  )
}

/**
 * The service's engine counters from GET /metrics (Prometheus text): every `llm_*` sample
 * without labels, by name. New counters (the prompt cache's) appear without code changes here.
 */
async function engineMetrics(url) {
  const text = await (await fetch(`${url}/metrics`)).text()
  const metrics = {}
  for (const line of text.split('\n')) {
    const m = /^(llm_[a-z0-9_]+) (\S+)$/.exec(line)
    if (m) metrics[m[1]] = Number(m[2])
  }
  return metrics
}

module.exports = { runDirectory, removeRunDirectory, buildService, startService, startLlamaServer, engineMetrics, EXAMPLE }
