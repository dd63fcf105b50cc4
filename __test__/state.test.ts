// What health() and metrics() say is current the moment a caller looks; long prompts are
// prepared off the event loop; a load cancelled by shutdown() says so; logLevel controls
// llama.cpp's own logs.
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import * as llama from '../index'
import { Engine } from '../index'
import { SMOLLM2, LONG_PROMPT, failure } from './helpers'

const LIGHT = { modelPath: SMOLLM2, threads: 1, contextSize: 512 }

describe('health and metrics', () => {
  let engine: Engine
  beforeAll(async () => {
    engine = await Engine.load({ ...LIGHT, parallel: 1 })
  })
  afterAll(async () => {
    await engine.unload()
  })

  test('every documented field is present, lastError and modelName as null when unset', async () => {
    const h = engine.health()
    expect(h).toEqual({
      status: 'ok',
      modelName: expect.any(String),
      contextSize: 512,
      uptimeMs: expect.any(Number),
      lastError: null,
      devices: [expect.stringMatching(/^CPU: /)],
      slotsBusy: 0,
      slotsTotal: 1,
      queueDepth: 0,
    })
  })

  test('a finished request has left its slot by the time its promise resolves', async () => {
    for (let i = 0; i < 5; i++) {
      await engine.generate('Hello there', { maxTokens: 3, temperature: 0 })
      expect(engine.health().slotsBusy).toBe(0)
      expect(engine.metrics().requestsActive).toBe(0)
      expect(engine.metrics().requestsQueued).toBe(0)
    }
  })

  test('queued requests count the moment they are submitted', async () => {
    const running = [0, 1, 2].map(() => engine.generate(LONG_PROMPT, { maxTokens: 24, temperature: 0 }))
    // One slot: at least two of the three wait, even before the inference thread has looked.
    expect(engine.health().queueDepth).toBeGreaterThanOrEqual(2)
    await Promise.all(running)
    expect(engine.health()).toMatchObject({ queueDepth: 0, slotsBusy: 0 })
  })

  test('token counters agree: evaluated prompt tokens never exceed prompt minus cached', async () => {
    const ctl = new AbortController()
    const aborted = engine.generate(LONG_PROMPT, { maxTokens: 200, signal: ctl.signal })
    setTimeout(() => ctl.abort(), 50)
    await expect(aborted).rejects.toMatchObject({ code: 'ABORTED' })
    await engine.generate('Hi', { maxTokens: 2 })
    const m = engine.metrics()
    expect(m.promptTokensEvaluated).toBeLessThanOrEqual(m.promptTokensTotal - m.cachedTokensTotal)
    expect(m.completionTokensTotal).toBeGreaterThan(0)
  })

  test('after unload: unloaded, no slots, lastError null', async () => {
    const other = await Engine.load({ ...LIGHT, parallel: 2 })
    await other.unload()
    expect(other.health()).toMatchObject({ status: 'unloaded', slotsTotal: 0, slotsBusy: 0, queueDepth: 0, lastError: null })
  })
})

test('ModelInfo.gpuLayers reports layers offloaded: none on this CPU-only build', async () => {
  const engine = await Engine.load({ ...LIGHT, gpuLayers: 99 })
  try {
    expect(engine.info.gpuLayers).toBe(0)
  } finally {
    await engine.unload()
  }
})

describe('prompt preparation', () => {
  test('a huge prompt does not block the event loop; it fails with CONTEXT_OVERFLOW', async () => {
    const engine = await Engine.load({ ...LIGHT, parallel: 1 })
    try {
      const prompt = 'hello world '.repeat(40_000) // 480 kB: about 0.3 s to tokenize
      const started = performance.now()
      const pending = engine.generate(prompt, { maxTokens: 2 })
      const blocked = performance.now() - started
      expect(blocked).toBeLessThan(100)
      const err = await failure(pending)
      expect(err.code).toBe('CONTEXT_OVERFLOW')
      // The engine still serves.
      expect((await engine.generate('Hi', { maxTokens: 2 })).completionTokens).toBeGreaterThan(0)
    } finally {
      await engine.unload()
    }
  })

  test('QUEUE_FULL is decided at submit, even while a long prompt is still being tokenized', async () => {
    // parallel 1 + maxQueue 2: the engine holds three requests at once.
    const engine = await Engine.load({ ...LIGHT, parallel: 1, maxQueue: 2 })
    try {
      const order: string[] = []
      const track = (name: string, p: Promise<unknown>) =>
        p.then(
          () => (order.push(`${name}:ok`), 'ok'),
          (err) => (order.push(`${name}:${err.code}`), err.code),
        )
      const huge = track('huge', engine.generate('hello world '.repeat(40_000), { maxTokens: 2 }))
      const rest = ['a', 'b', 'c', 'd'].map((name) => track(name, engine.generate('Hi', { maxTokens: 2 })))
      // Counted at once, never beyond what the engine holds.
      expect(engine.health().queueDepth).toBe(3)
      expect(await Promise.all([huge, ...rest])).toEqual(['CONTEXT_OVERFLOW', 'ok', 'ok', 'QUEUE_FULL', 'QUEUE_FULL'])
      // The refusals did not wait for the long prompt.
      expect(order.indexOf('c:QUEUE_FULL')).toBeLessThan(order.indexOf('huge:CONTEXT_OVERFLOW'))
      expect(engine.metrics()).toMatchObject({ requestsQueued: 0, requestsActive: 0 })
      // Every place was given back: three at once are admitted again.
      const again = await Promise.all(['x', 'y', 'z'].map(() => engine.generate('Hi', { maxTokens: 2 })))
      expect(again).toHaveLength(3)
    } finally {
      await engine.unload()
    }
  })
})

test('unload() resolves after every request still being prepared has its answer', async () => {
  const engine = await Engine.load({ ...LIGHT, parallel: 1 })
  const huge = 'hello world '.repeat(40_000)
  const outcomes = [huge, 'Hi', 'Hello'].map((p) =>
    engine.generate(p, { maxTokens: 2 }).then(
      () => 'ok',
      (err) => err.code,
    ),
  )
  await engine.unload()
  expect(engine.metrics()).toMatchObject({ requestsQueued: 0, requestsActive: 0 })
  for (const code of await Promise.all(outcomes)) expect(['ok', 'ABORTED', 'CONTEXT_OVERFLOW']).toContain(code)
})

describe('the default engine', () => {
  afterEach(async () => {
    await llama.shutdown()
  })

  test('initialize() cancelled by shutdown() rejects with ABORTED, and health() is unloaded', async () => {
    const loading = failure(llama.initialize(LIGHT))
    await llama.shutdown()
    expect((await loading).code).toBe('ABORTED')
    expect(llama.health()).toMatchObject({ status: 'unloaded', lastError: null })
    // A fresh initialize works.
    await llama.initialize(LIGHT)
    expect(llama.health().status).toBe('ok')
  })

  test('initialize() replaced by initialize({ replace: true }) rejects with ABORTED; the new one loads', async () => {
    const first = failure(llama.initialize(LIGHT))
    const second = llama.initialize({ ...LIGHT, replace: true })
    expect((await first).code).toBe('ABORTED')
    await second
    expect(llama.health().status).toBe('ok')
  })

  test('rejected options do not put health() in error', async () => {
    await failure(llama.initialize({ ...LIGHT, useMmap: 'yes' as unknown as boolean }))
    expect(llama.health()).toMatchObject({ status: 'unloaded', lastError: null })
  })
})

describe('logLevel', () => {
  // A child process: the log filter is per process.
  const run = (level: string) =>
    spawnSync(
      process.execPath,
      [
        '-e',
        `const l = require(${JSON.stringify(path.join(__dirname, '..'))});
         l.initialize({ modelPath: ${JSON.stringify(SMOLLM2)}, threads: 1, contextSize: 256, logLevel: '${level}' })
           .then(() => l.generate('Hi', { maxTokens: 1, grammar: 'root ::= "a"' })).then(() => l.shutdown())`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    )

  test("'debug' shows llama.cpp's own logs; 'warn' and 'off' do not", () => {
    const debug = run('debug')
    expect(debug.status).toBe(0)
    expect(debug.stderr).toMatch(/llama_model_loader|load_tensors|llama_context/)
    for (const level of ['warn', 'off']) {
      const quiet = run(level)
      expect(quiet.status).toBe(0)
      expect(quiet.stderr).toBe('')
    }
  })

  test('a grammar syntax error says where, and llama.cpp prints nothing', () => {
    const r = spawnSync(
      process.execPath,
      [
        '-e',
        `const l = require(${JSON.stringify(path.join(__dirname, '..'))});
         l.initialize({ modelPath: ${JSON.stringify(SMOLLM2)}, threads: 1, contextSize: 256 })
           .then(() => l.generate('Hi', { maxTokens: 1, grammar: 'root ::= "a" | (' }))
           .catch((e) => console.log(JSON.stringify({ code: e.code, message: e.message })))
           .then(() => l.shutdown())`,
      ],
      { encoding: 'utf8', timeout: 60_000 },
    )
    expect(r.status).toBe(0)
    const err = JSON.parse(r.stdout.trim())
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).toMatch(/expecting '\)'.*line 1, column 17/)
    expect(r.stderr).toBe('')
  })

  test('logs carry no colour codes when stderr is not a terminal', () => {
    expect(run('debug').stderr).not.toContain('\u001b[')
  })
})
