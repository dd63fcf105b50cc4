// Engine.pool over real llama-servers (and a local engine): routing, affinity, failover when a
// backend dies (SIGKILL) or hangs (SIGSTOP), and probing it back in.
import { Engine } from '../index'
import type { EnginePool } from '../index'
import { SMOLLM2, LONG_PROMPT, collect, failure } from './helpers'
import { busySlots, freePort, startLlamaServer } from './llama-server'
import type { LlamaServer } from './llama-server'

const QUICK_PROBES = { probeIntervalMs: 250, probeTimeoutMs: 1000, failureThreshold: 2, cooldownMs: 1000 }

async function until(condition: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 50))
  }
  return true
}

function completedOn(pool: EnginePool): number[] {
  return pool.metrics().backends.map((b) => b.completed)
}

describe('two llama-servers', () => {
  let a: LlamaServer
  let b: LlamaServer
  beforeEach(async () => {
    ;[a, b] = await Promise.all([startLlamaServer(SMOLLM2), startLlamaServer(SMOLLM2)])
  })
  afterEach(async () => {
    await Promise.all([a?.stop(), b?.stop()])
  })

  test('health aggregates the backends; requests spread over both; metrics count each', async () => {
    const pool = Engine.pool([await Engine.connect(a.url), await Engine.connect(b.url)])
    const h = pool.health()
    expect(h.status).toBe('ok')
    expect(h.slotsTotal).toBe(4)
    expect(h.backends.map((x) => x.name)).toEqual([a.url, b.url])
    expect(h.backends.every((x) => x.ready && x.breaker === 'closed')).toBe(true)
    await Promise.all(Array.from({ length: 8 }, (_, i) => pool.generate(`Item ${i}:`, { maxTokens: 8 })))
    const m = pool.metrics()
    expect(m.requestsCompleted).toBe(8)
    expect(m.backends.every((x) => x.completed > 0)).toBe(true)
    expect(m.backends.reduce((n, x) => n + x.completed, 0)).toBe(8)
    expect(m.backends[0].metrics.requestsCompleted).toBe(m.backends[0].completed)
    await pool.unload()
    expect(pool.health().status).toBe('unloaded')
    expect((await failure(pool.generate('hi'))).code).toBe('MODEL_NOT_LOADED')
  })

  test('affinity: later turns of a chat go to the backend that served it, and reuse its cache', async () => {
    const pool = Engine.pool([await Engine.connect(a.url), await Engine.connect(b.url)])
    for (let chat = 0; chat < 4; chat++) {
      const messages = [
        { role: 'system' as const, content: `You are assistant number ${chat}. Answer briefly and politely.` },
        { role: 'user' as const, content: `Name a colour, please (${chat}).` },
      ]
      const before = completedOn(pool)
      const first = await pool.generate(messages, { maxTokens: 8, temperature: 0 })
      const served = completedOn(pool).findIndex((n, i) => n > before[i])
      // Load elsewhere must not pull turn 2 away while its backend is ready.
      const noise = pool.generate('Unrelated text:', { maxTokens: 16 })
      const again = completedOn(pool)
      const second = await pool.generate([...messages, { role: 'assistant', content: first.text }, { role: 'user', content: 'And another?' }], {
        maxTokens: 8,
        temperature: 0,
      })
      expect(completedOn(pool)[served]).toBeGreaterThan(again[served])
      expect(second.cachedTokens).toBeGreaterThan(0)
      await noise
    }
    await pool.unload()
  })

  test('aborting a pool stream after its first chunk frees the server slot', async () => {
    const pool = Engine.pool([await Engine.connect(a.url), await Engine.connect(b.url)])
    const controller = new AbortController()
    const reader = pool.stream(LONG_PROMPT, { maxTokens: 1000, grammar: 'root ::= [a-z ]+', signal: controller.signal }).getReader()
    expect((await reader.read()).done).toBe(false)
    controller.abort()
    expect((await failure(reader.read())).code).toBe('ABORTED')
    const idle = async () => (await busySlots(a)) + (await busySlots(b))
    const deadline = Date.now() + 1000
    while ((await idle()) > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
    expect(await idle()).toBe(0)
    expect(pool.metrics().requestsAborted).toBe(1)
    await pool.unload()
  })

  test('40 requests, one backend SIGKILLed part way: each completes or fails with a code in time; nothing undelivered is lost', async () => {
    const pool = Engine.pool([await Engine.connect(a.url), await Engine.connect(b.url)], QUICK_PROBES)
    const timeoutMs = 90_000
    const started = Date.now()
    type Outcome = { ok: boolean; code?: string; delivered: boolean; ms: number }
    const run = async (i: number): Promise<Outcome> => {
      const t0 = Date.now()
      let delivered = false
      try {
        if (i % 2 === 0) {
          await pool.generate(`Story ${i}: ${LONG_PROMPT}`, { maxTokens: 24, timeoutMs })
        } else {
          for await (const chunk of pool.stream(`Story ${i}: ${LONG_PROMPT}`, { maxTokens: 24, timeoutMs })) {
            if (!chunk.done) delivered = true
          }
        }
        return { ok: true, delivered, ms: Date.now() - t0 }
      } catch (err) {
        return { ok: false, code: (err as { code?: string }).code, delivered, ms: Date.now() - t0 }
      }
    }
    const all = Promise.all(Array.from({ length: 40 }, (_, i) => run(i)))
    // Part way: once the victim has finished some of its share.
    await until(() => pool.metrics().backends[1].completed >= 2, 60_000)
    b.signal('SIGKILL')
    const outcomes = await all
    for (const o of outcomes) {
      expect(o.ms).toBeLessThan(timeoutMs)
      if (!o.ok) {
        // Only a stream that had already delivered text may fail, and then with UNAVAILABLE.
        expect(o.code).toBe('UNAVAILABLE')
        expect(o.delivered).toBe(true)
      }
    }
    expect(outcomes.filter((o) => o.ok).length).toBeGreaterThanOrEqual(38)
    expect(Date.now() - started).toBeLessThan(timeoutMs)
    const h = pool.health()
    expect(h.status).toBe('ok')
    expect(h.backends[1]).toMatchObject({ ready: false })
    // The survivor keeps serving.
    expect((await pool.generate('After:', { maxTokens: 4 })).completionTokens).toBeGreaterThan(0)
    await pool.unload()
  })

  test('a hung backend (SIGSTOP): the breaker opens, its requests finish on the other within their deadline; SIGCONT brings it back', async () => {
    const pool = Engine.pool([await Engine.connect(a.url), await Engine.connect(b.url)], QUICK_PROBES)
    const timeoutMs = 60_000
    b.signal('SIGSTOP')
    const started = Date.now()
    const results = await Promise.all(Array.from({ length: 6 }, (_, i) => pool.generate(`Note ${i}:`, { maxTokens: 16, timeoutMs })))
    expect(results.every((g) => g.completionTokens > 0)).toBe(true)
    expect(Date.now() - started).toBeLessThan(timeoutMs)
    expect(pool.health().backends[1].breaker).not.toBe('closed')
    b.signal('SIGCONT')
    expect(await until(() => pool.health().backends[1].ready, 20_000)).toBe(true)
    expect(pool.health().backends[1].breaker).toBe('closed')
    await pool.unload()
  })

  test('a stream from a backend that hangs after its first chunk ends UNAVAILABLE once the breaker opens, even without a deadline', async () => {
    const pool = Engine.pool([await Engine.connect(a.url)], QUICK_PROBES)
    const reader = pool.stream(LONG_PROMPT, { maxTokens: 1000, grammar: 'root ::= [a-z ]+' }).getReader()
    expect((await reader.read()).done).toBe(false)
    a.signal('SIGSTOP')
    try {
      let err: { code?: string } | null = null
      try {
        for (;;) if ((await reader.read()).done) break
      } catch (e) {
        err = e as { code?: string }
      }
      expect(err?.code).toBe('UNAVAILABLE')
    } finally {
      a.signal('SIGCONT')
    }
    await pool.unload()
  })
})

test('a pool of a local engine and an unreachable server serves from the local one', async () => {
  const local = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 1024, parallel: 2 })
  const dead = await Engine.connect({ baseURL: `http://127.0.0.1:${await freePort()}` })
  const pool = Engine.pool([dead, local], QUICK_PROBES)
  const h = pool.health()
  expect(h.status).toBe('ok')
  expect(h.backends[0]).toMatchObject({ remote: true, ready: false })
  expect(h.backends[1]).toMatchObject({ remote: false, ready: true })
  const { final } = await collect(pool.stream('Hello', { maxTokens: 4 }))
  expect(final!.completionTokens).toBeGreaterThan(0)
  expect(Array.from(await pool.tokenize('hello'))).toEqual(Array.from(local.tokenize('hello')))
  expect((await failure(pool.generate('hi', { maxTokens: 0 } as never))).code).toBe('INVALID_ARGUMENT')
  expect((await failure(() => Engine.pool([]))).code).toBe('INVALID_ARGUMENT')
  expect((await failure(() => Engine.pool([local], { probeEvery: 1 } as never))).code).toBe('INVALID_ARGUMENT')
  await pool.unload()
})

test('a pool with no ready backend is UNAVAILABLE, without waiting for the deadline', async () => {
  const dead = await Engine.connect({ baseURL: `http://127.0.0.1:${await freePort()}` })
  const pool = Engine.pool([dead], { ...QUICK_PROBES, maxRetries: 1, retryBaseDelayMs: 10 })
  expect(pool.health().status).toBe('error')
  const started = Date.now()
  expect((await failure(pool.generate('hi', { timeoutMs: 30_000 }))).code).toBe('UNAVAILABLE')
  expect(Date.now() - started).toBeLessThan(5000)
  await pool.unload()
})
