// Many callers cancelling at random moments must not leak slots or disturb each other.
import { Engine } from '../index'
import { SMOLLM2, LONG_PROMPT, failure } from './helpers'

/** A small deterministic PRNG, so a failing run can be replayed. */
function rng(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

test('abort storm: 200 requests aborted at random points over 8 slots all settle, no slot leaks', async () => {
  const engine = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 512, parallel: 8, maxQueue: 256 })
  try {
    const random = rng(20261122)
    const outcomes = await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        const controller = new AbortController()
        const delay = Math.floor(random() * 400)
        const kind = random()
        const options = { maxTokens: 32, temperature: 0.7, seed: i, signal: controller.signal }
        // Abort before submission, while queued, mid-prompt or mid-stream.
        const abort = setTimeout(() => controller.abort(), delay)
        try {
          if (kind < 0.5) {
            await engine.generate(`${LONG_PROMPT} ${i}`, options)
          } else {
            for await (const chunk of engine.stream(`${LONG_PROMPT} ${i}`, options)) {
              if (!chunk.done && random() < 0.05) break // a consumer that walks away
            }
          }
          return 'completed'
        } catch (err) {
          return (err as { code?: string }).code ?? 'no code'
        } finally {
          clearTimeout(abort)
        }
      }),
    )
    const unexpected = outcomes.filter((o) => o !== 'completed' && o !== 'ABORTED')
    expect(unexpected).toEqual([])
    expect(outcomes.filter((o) => o === 'ABORTED').length).toBeGreaterThan(20)
    // Slots are freed at the next decode step after a cancel: wait for the engine to go idle.
    for (let i = 0; i < 100 && (engine.metrics().slotsBusy > 0 || engine.metrics().queueDepth > 0); i++) await sleep(20)
    const m = engine.metrics()
    expect(m.slotsBusy).toBe(0)
    expect(m.queueDepth).toBe(0)
    expect(m.requestsActive).toBe(0)
    expect(m.requestsCompleted + m.requestsAborted + m.requestsFailed + m.requestsTimedOut).toBe(m.requestsTotal)
    expect(m.requestsFailed).toBe(0)
    const after = await engine.generate('The capital of France is', { maxTokens: 8, temperature: 0 })
    expect(after.completionTokens).toBeGreaterThan(0)
    expect(engine.health().status).toBe('ok')
  } finally {
    await engine.unload()
  }
})

test('aborting before submission never reaches the engine', async () => {
  const engine = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 256, parallel: 1 })
  try {
    const controller = new AbortController()
    controller.abort()
    expect((await failure(engine.generate('hi', { signal: controller.signal }))).code).toBe('ABORTED')
    expect(engine.metrics().requestsTotal).toBe(0)
  } finally {
    await engine.unload()
  }
})
