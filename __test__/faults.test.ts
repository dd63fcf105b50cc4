// Recovery paths, exercised with the test-only fault injection (the untyped `__faults` load
// option, or NAPI_LLAMA_FAULTS in the environment): a failing decode, a panicking scheduler step,
// a listener that disappears.
import { Engine } from '../index'
import { SMOLLM2, LONG_PROMPT, failure } from './helpers'

async function withFaults<T>(spec: string, body: (engine: Engine) => Promise<T>): Promise<T> {
  const options = { modelPath: SMOLLM2, threads: 1, contextSize: 512, parallel: 2, logLevel: 'off', __faults: spec }
  const engine = await Engine.load(options as Parameters<typeof Engine.load>[0])
  try {
    return await body(engine)
  } finally {
    await engine.unload()
  }
}

const greedy = { temperature: 0, maxTokens: 16 }

test('a failing decode rejects the requests in that batch with INTERNAL; the next request works', async () => {
  await withFaults('decode:3', async (engine) => {
    const err = await failure(engine.generate(LONG_PROMPT, greedy))
    expect(err.code).toBe('INTERNAL')
    expect(err.message).toMatch(/decode failed/)
    expect(engine.health().status).toBe('ok')
    expect(engine.health().lastError).toMatch(/injected fault/)
    const next = await engine.generate('The capital of France is', greedy)
    expect(next.completionTokens).toBeGreaterThan(0)
    // The failed batch's cache was discarded: nothing stale is reused.
    expect(next.cachedTokens).toBe(0)
    expect(engine.metrics().requestsFailed).toBe(1)
  })
})

test('a panicking step fails the requests in flight with INTERNAL; the engine keeps serving', async () => {
  await withFaults('panic:4', async (engine) => {
    const [a, b] = await Promise.allSettled([engine.generate(LONG_PROMPT, greedy), engine.generate('Hello there', greedy)])
    const codes = [a, b].map((r) => (r.status === 'rejected' ? (r.reason as { code: string }).code : 'ok'))
    expect(codes).toContain('INTERNAL')
    const failed = [a, b].find((r) => r.status === 'rejected') as PromiseRejectedResult
    expect(failed.reason.message).toMatch(/panic/)
    const next = await engine.generate('The capital of France is', greedy)
    expect(next.text.length).toBeGreaterThan(0)
    expect(engine.health().status).toBe('ok')
  })
})

test('a stream whose listener is gone is cancelled; a concurrent request is undisturbed', async () => {
  const alone = await withFaults('', (engine) => engine.generate('The capital of France is', greedy))
  await withFaults('sink:3', async (engine) => {
    const chunks: string[] = []
    // After the 3rd chunk the engine is told the listener went away, so it cancels the request.
    // (Here the listener is in fact still there, and sees the cancellation as ABORTED.)
    const lost = failure(
      (async () => {
        for await (const c of engine.stream(LONG_PROMPT, { ...greedy, maxTokens: 64 })) chunks.push(c.text)
      })(),
    )
    const other = engine.generate('The capital of France is', greedy)
    expect((await lost).code).toBe('ABORTED')
    expect(chunks.length).toBeLessThanOrEqual(3)
    expect((await other).text).toBe(alone.text)
    expect(engine.metrics().slotsBusy).toBe(0)
    expect(engine.metrics().requestsAborted).toBe(1)
  })
})
