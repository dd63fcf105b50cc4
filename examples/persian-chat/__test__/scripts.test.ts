// The command-line tools, built with tsc and run as `npm run` would: detect-hardware, and
// health-check against a running service, a dead port and (--local) the model itself, and the
// server `npm start` runs.
import { spawn, spawnSync } from 'node:child_process'
import fs from 'node:fs'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import os from 'node:os'
import path from 'node:path'
import { type TestService, startTestService } from './helpers'

const ROOT = path.join(__dirname, '..')

function run(script: string, args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'scripts', script), ...args], {
      cwd: ROOT,
      env: { ...process.env, ...env },
    })
    let stdout = ''
    let stderr = ''
    child.stdout.on('data', (d) => (stdout += d))
    child.stderr.on('data', (d) => (stderr += d))
    child.on('close', (code) => resolve({ code, stdout, stderr }))
  })
}

beforeAll(() => {
  const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], { cwd: ROOT, encoding: 'utf8' })
  expect(tsc.stdout + tsc.stderr).toBe('')
  expect(tsc.status).toBe(0)
})

test('detect-hardware reports cores, memory, SIMD, GPU and recommendations', async () => {
  const { code, stdout } = await run('detect-hardware.js', ['--json'])
  expect(code).toBe(0)
  const report = JSON.parse(stdout)
  expect(report.cpu.logicalCores).toBeGreaterThan(0)
  expect(report.cpu.physicalCores).toBeGreaterThan(0)
  expect(report.memory.totalBytes).toBeGreaterThan(0)
  expect(Array.isArray(report.cpu.simd)).toBe(true)
  expect(Array.isArray(report.gpus)).toBe(true)
  const rec = report.recommended
  expect(rec.LLM_THREADS).toBeGreaterThan(0)
  expect(rec.LLM_THREADS).toBeLessThanOrEqual(report.cpu.logicalCores)
  expect(rec.LLM_PARALLEL).toBeGreaterThan(0)
  expect(rec.LLM_CONTEXT_SIZE).toBeGreaterThanOrEqual(512)
  expect(rec.LLM_CONTEXT_SIZE % 256).toBe(0)

  const text = await run('detect-hardware.js', [])
  expect(text.code).toBe(0)
  expect(text.stdout).toMatch(/^ {2}LLM_THREADS=\d+$/m)
  expect(text.stdout).toMatch(/^ {2}LLM_PARALLEL=\d+$/m)
  expect(text.stdout).toMatch(/^ {2}LLM_CONTEXT_SIZE=\d+$/m)
})

describe('health-check against a running service', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService({ API_KEY: 'hc-key' })
  })
  afterAll(() => service.close())

  test('all components ✅ and exit 0', async () => {
    const { code, stdout } = await run('health-check.js', ['--url', service.url, '--api-key', 'hc-key'])
    expect(stdout).toMatch(/✅ HTTP server/)
    expect(stdout).toMatch(/✅ Model/)
    expect(stdout).toMatch(/✅ Generation/)
    expect(stdout).toMatch(/✅ Streaming/)
    expect(stdout).toMatch(/✅ Metrics/)
    expect(stdout).not.toMatch(/❌/)
    expect(code).toBe(0)
  })

  test('a wrong API key makes generation ❌ and exit 1', async () => {
    const { code, stdout } = await run('health-check.js', ['--url', service.url, '--api-key', 'nope'])
    expect(stdout).toMatch(/✅ HTTP server/)
    expect(stdout).toMatch(/❌ Generation .*401/)
    expect(code).toBe(1)
  })
})

test('health-check against a dead port: ❌ and exit 1', async () => {
  const { code, stdout } = await run('health-check.js', ['--url', 'http://127.0.0.1:9', '--timeout', '3000'])
  expect(stdout).toMatch(/❌ HTTP server/)
  expect(code).toBe(1)
})

test('health-check --local loads the model itself', async () => {
  const { code, stdout } = await run('health-check.js', ['--local'], { LLM_CONTEXT_SIZE: '1024', LLM_PARALLEL: '1' })
  expect(stdout).toMatch(/✅ Model load/)
  expect(stdout).toMatch(/✅ Tokenizer/)
  expect(stdout).toMatch(/✅ Generation/)
  expect(stdout).toMatch(/✅ Streaming/)
  expect(code).toBe(0)
})

test('health-check --local with a bad model path: ❌ and exit 1', async () => {
  const { code, stdout } = await run('health-check.js', ['--local'], { LLM_MODEL_PATH: '/nonexistent/model.gguf' })
  expect(stdout).toMatch(/❌ Model file/)
  expect(code).toBe(1)
})

test('the server `npm start` runs: reads .env, serves, and exits cleanly on SIGTERM mid-stream', async () => {
  const cwd = fs.mkdtempSync(path.join(os.tmpdir(), 'persian-chat-env-'))
  // No grace period: the running reply is cancelled at once (shutdown.test.ts covers the drain).
  fs.writeFileSync(path.join(cwd, '.env'), 'PORT=0\nLLM_MAX_TOKENS=300\nLLM_CONTEXT_SIZE=1024\nLLM_PARALLEL=1\nLOG_REQUESTS=false\nSHUTDOWN_GRACE_MS=0\n')
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'src', 'server.js')], { cwd, env: { ...process.env, PORT: '' } })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no listening line: ${stderr}`)), 30_000)
      child.stderr.on('data', () => {
        const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(stderr)
        if (m) {
          clearTimeout(timer)
          resolve(m[1])
        }
      })
    })
    let health = await fetch(`${url}/health`)
    while (health.status !== 200) {
      await new Promise((r) => setTimeout(r, 100))
      health = await fetch(`${url}/health`)
    }
    // A long reply (.env's cap is 300 tokens) is still streaming when SIGTERM arrives.
    const res = await fetch(`${url}/api/chat`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: 'یک داستان خیلی بلند بنویس.', stream: true }),
    })
    const reader = res.body!.getReader()
    await reader.read() // the first piece: the stream is running
    child.kill('SIGTERM')
    let rest = ''
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }))
      if (done) break
      rest += Buffer.from(value!).toString('utf8')
    }
    expect(await exited).toBe(0)
    expect(stderr).toMatch(/SIGTERM: shutting down/)
    // The stream was ended by the shutdown (an error event), not left hanging.
    expect(rest).toMatch(/event: error/)
  } finally {
    child.kill('SIGKILL')
    fs.rmSync(cwd, { recursive: true, force: true })
  }
})

/** Runs the built server with `env`; `listening` resolves with its URL. */
function startServer(env: Record<string, string>) {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist', 'src', 'server.js')], { cwd: os.tmpdir(), env: { ...process.env, ...env } })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const exited = new Promise<number | null>((resolve) => child.on('close', resolve))
  const listening = new Promise<string>((resolve, reject) => {
    child.stderr.on('data', () => {
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(stderr)
      if (m) resolve(m[1])
    })
    child.on('close', () => reject(new Error(`exited before listening: ${stderr}`)))
  })
  listening.catch(() => undefined)
  return { child, exited, listening, stderr: () => stderr }
}

test('the server refuses to listen on a non-loopback HOST without a key', async () => {
  const server = startServer({ HOST: '0.0.0.0', PORT: '0', API_KEY: '', API_KEYS: '', ALLOW_NO_AUTH: '' })
  expect(await server.exited).toBe(2)
  expect(server.stderr()).toMatch(/configuration error: HOST=0\.0\.0\.0 .*API_KEY.*ALLOW_NO_AUTH=true/)
})

test('a first-start model download is killed on shutdown', async () => {
  // pip, run by the fetch script, asks this index for the model's wheels and gets no answer:
  // the download is in progress for as long as the test wants.
  const connections: Socket[] = []
  const index = http.createServer(() => undefined)
  index.on('connection', (socket) => connections.push(socket))
  await new Promise<void>((resolve) => index.listen(0, '127.0.0.1', resolve))
  const modelsDir = fs.mkdtempSync(path.join(os.tmpdir(), 'persian-chat-models-'))
  const server = startServer({
    PORT: '0',
    LLM_MODEL_PATH: '',
    NAPI_LLAMA_MODELS_DIR: modelsDir,
    PIP_INDEX_URL: `http://127.0.0.1:${(index.address() as AddressInfo).port}/simple`,
    PIP_DEFAULT_TIMEOUT: '600',
    PIP_DISABLE_PIP_VERSION_CHECK: '1',
    LOG_REQUESTS: 'false',
  })
  try {
    const url = await server.listening
    await new Promise<void>((resolve) => index.once('request', () => resolve()))
    const health = await fetch(`${url}/health`)
    expect(health.status).toBe(503)
    expect((await health.json()).status).toBe('loading')

    server.child.kill('SIGTERM')
    expect(await server.exited).toBe(0)
    // pip's connection to the index closes: the download was killed, not left running.
    await Promise.all(connections.map((socket) => new Promise((resolve) => (socket.destroyed ? resolve(null) : socket.once('close', resolve)))))
    expect(server.stderr()).toMatch(/fetching Gemma 3/)
    expect(fs.existsSync(path.join(modelsDir, 'gemma-3-270m-q4_k_m.gguf'))).toBe(false)
  } finally {
    server.child.kill('SIGKILL')
    index.closeAllConnections()
    index.close()
    fs.rmSync(modelsDir, { recursive: true, force: true })
  }
})
