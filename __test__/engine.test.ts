// The Engine class: two models at once (SmolLM2 and the Persian Gemma 3), and a process that
// exits on its own after shutdown.
import { spawnSync } from 'node:child_process'
import * as path from 'node:path'
import { Engine } from '../index'
import { SMOLLM2, GEMMA3, FAST, LONG_PROMPT, collect } from './helpers'

let smol: Engine
let gemma: Engine

beforeAll(async () => {
  const progress: number[] = []
  ;[smol, gemma] = await Promise.all([
    Engine.load({ modelPath: SMOLLM2, ...FAST }),
    Engine.load({ modelPath: GEMMA3, ...FAST, onProgress: (p) => progress.push(p) }),
  ])
  expect(progress.length).toBeGreaterThan(0)
  expect(progress[progress.length - 1]).toBeCloseTo(1, 1)
})

afterAll(async () => {
  await Promise.all([smol?.unload(), gemma?.unload()])
})

test('an engine reports what it holds in memory: weights plus a KV cache that grows with its slots', async () => {
  const info = smol.info
  expect(info.kvCacheBytes).toBeGreaterThan(0)
  expect(info.memoryBytes).toBe(info.sizeBytes + (info.kvCacheBytes ?? 0))
  const wider = await Engine.load({ modelPath: SMOLLM2, ...FAST, parallel: info.parallel * 2 })
  try {
    expect(wider.info.kvCacheBytes).toBe(2 * (info.kvCacheBytes ?? 0))
  } finally {
    await wider.unload()
  }
})

test('Gemma 3 (no chat template) falls back to the built-in gemma format', async () => {
  expect(gemma.info.architecture).toBe('gemma3')
  expect(gemma.info.chatTemplateSource).toBe('builtin-fallback')
  expect(gemma.info.chatTemplate).toBe('gemma')
  const g = await gemma.generate([{ role: 'user', content: 'سلام، چطوری؟' }], { temperature: 0, maxTokens: 24 })
  expect(g.completionTokens).toBeGreaterThan(0)
  expect(g.text).not.toContain('\uFFFD')
})

test('Gemma 3 writes Persian, streamed in whole characters', async () => {
  const { chunks, text, final } = await collect(gemma.stream('پایتخت ایران شهر', { temperature: 0, maxTokens: 24 }))
  expect(final?.completionTokens).toBeGreaterThan(0)
  expect(/[\u0600-\u06FF]/.test(text)).toBe(true)
  for (const c of chunks) expect(c.text).not.toContain('\uFFFD')
  expect(gemma.detokenize(gemma.tokenize('سلام، چطوری؟'))).toBe('سلام، چطوری؟')
})

test('two engines serve at the same time', async () => {
  const [a, b] = await Promise.all([
    smol.generate('The sky is', { temperature: 0, maxTokens: 8 }),
    gemma.generate('The sky is', { temperature: 0, maxTokens: 8 }),
  ])
  expect(a.completionTokens).toBe(8)
  expect(b.completionTokens).toBe(8)
  expect(smol.health().status).toBe('ok')
  expect(gemma.health().modelName).toMatch(/\S/)
})

test('a chatTemplate option overrides the model template', async () => {
  const e = await Engine.load({ modelPath: SMOLLM2, ...FAST, chatTemplate: 'chatml' })
  expect(e.info.chatTemplateSource).toBe('option')
  expect(e.info.chatTemplate).toBe('chatml')
  const g = await e.generate([{ role: 'user', content: 'Hi' }], { temperature: 0, maxTokens: 4 })
  expect(g.completionTokens).toBeGreaterThan(0)
  await e.unload()
  expect(e.health().status).toBe('unloaded')
  await expect(e.generate('hi')).rejects.toMatchObject({ code: 'MODEL_NOT_LOADED' })
})

test('a chatTemplate that loops fails with INVALID_ARGUMENT instead of hanging the load', async () => {
  const loop = '{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}{{ messages[0].content }}'
  const err = await Engine.load({ modelPath: SMOLLM2, ...FAST, chatTemplate: loop }).then(
    () => null,
    (e) => e,
  )
  expect(err).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/does it loop/) })
})

test('parallel slots decode several requests in one batch; extra requests wait', async () => {
  const e = await Engine.load({ modelPath: SMOLLM2, ...FAST, parallel: 2 })
  expect(e.info.parallel).toBe(2)
  const results = await Promise.all(
    [1, 2, 3].map((seed) => e.generate(LONG_PROMPT, { seed, temperature: 0.8, maxTokens: 16 })),
  )
  for (const g of results) expect(g.completionTokens).toBeGreaterThan(0)
  expect(Math.max(...results.map((g) => g.timings.queueMs))).toBeGreaterThan(0)
  const m = e.metrics()
  expect(m.requestsCompleted).toBe(3)
  expect(m.requestsActive).toBe(0)
  // Fewer decode calls than tokens: slots shared batches.
  const tokens = results.reduce((n, g) => n + g.completionTokens, 0)
  expect(m.decodeCalls).toBeLessThan(tokens)
  await e.unload()
})

test('a Node process exits on its own after shutdown (no open handles)', () => {
  const script = `
    const llama = require(${JSON.stringify(path.join(__dirname, '..'))})
    ;(async () => {
      await llama.initialize({ modelPath: ${JSON.stringify(SMOLLM2)}, threads: 1, contextSize: 512 })
      const s = llama.stream('Hello', { maxTokens: 4 })
      for await (const c of s) {}
      await llama.generate('Hello', { maxTokens: 4 })
      await llama.shutdown()
      console.log('done')
    })()
  `
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60_000 })
  expect(r.stdout).toContain('done')
  expect(r.status).toBe(0)
  expect(r.signal).toBeNull()
})

describe('threadPoll', () => {
  // The pool is attached where the addon's link step can reach llama.cpp's context: Linux.
  const onLinux = process.platform === 'linux' ? test : test.skip
  onLinux('an engine with two or more threads gets a persistent thread pool that sleeps when idle', () => {
    // In a child process: its debug log (stderr) says whether the pool was attached.
    const child = `
      const { Engine } = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
      Engine.load({ modelPath: process.argv[1], threads: 2, contextSize: 512, logLevel: 'debug' })
        .then((e) => e.generate('Hi', { maxTokens: 2 }).then(() => e.unload()))
        .catch((err) => { console.error(err.code, err.message); process.exit(1) })`
    const r = spawnSync(process.execPath, ['-e', child, SMOLLM2], { encoding: 'utf8', timeout: 120_000, maxBuffer: 64 << 20 })
    expect(r.status).toBe(0)
    expect(r.stderr).toMatch(/attached a persistent thread pool.*sleeps_when_idle=true/)
  })

  test('the workers’ polling level changes no text, and an idle engine’s workers sleep', async () => {
    // Compared at equal thread counts: ggml does not promise the same rounding across them.
    const reference = await Engine.load({ modelPath: SMOLLM2, ...FAST, threads: 2 })
    const expected = await reference.generate('The sky is', { temperature: 0, maxTokens: 12 }).finally(() => reference.unload())
    for (const threadPoll of [0, 100]) {
      const engine = await Engine.load({ modelPath: SMOLLM2, ...FAST, threads: 2, threadPoll })
      try {
        const g = await engine.generate('The sky is', { temperature: 0, maxTokens: 12 })
        expect(g.text).toBe(expected.text)
        // A reply's last step leaves the workers polling for the next one; the engine puts
        // them to sleep as soon as it has nothing to do, so the process is quiet afterwards.
        await new Promise((r) => setTimeout(r, 50))
        const before = process.cpuUsage()
        await new Promise((r) => setTimeout(r, 500))
        const used = process.cpuUsage(before)
        expect((used.user + used.system) / 1000).toBeLessThan(150)
      } finally {
        await engine.unload()
      }
    }
  })
})
