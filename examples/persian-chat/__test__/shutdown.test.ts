// Graceful shutdown of the service `npm start` runs (startService, in this process): it stops
// accepting connections, lets running replies finish for up to SHUTDOWN_GRACE_MS, then cancels
// what is left.
import type { AddressInfo } from 'node:net'
import { type RunningService, startService } from '../src/server'
import { parseSse, testConfig, waitFor } from './helpers'

async function start(env: Record<string, string>): Promise<{ service: RunningService; url: string }> {
  const service = await startService(testConfig(env))
  await waitFor(() => service.llm.state === 'ready', 60_000, 'the model to load')
  return { service, url: `http://127.0.0.1:${(service.server.address() as AddressInfo).port}` }
}

/** Starts a streamed reply and resolves once its first piece arrived, with the rest to come. */
async function streamStarted(url: string, body: object): Promise<{ rest: Promise<string> }> {
  const res = await fetch(`${url}/api/chat`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) })
  const reader = res.body!.getReader()
  const decoder = new TextDecoder()
  let text = decoder.decode((await reader.read()).value, { stream: true })
  // Wrapped: an async function returning a promise would wait for it.
  const rest = (async () => {
    for (;;) {
      const { value, done } = await reader.read().catch(() => ({ value: undefined, done: true }))
      if (done) return text
      text += decoder.decode(value, { stream: true })
    }
  })()
  return { rest }
}

test('running replies finish within the grace period; new connections are refused meanwhile', async () => {
  // Every decode step takes 20 ms more (test-only fault): the reply is still running when the
  // shutdown begins, and the grace period is far longer than it.
  const { service, url } = await start({ LLM_MAX_TOKENS: '30', NAPI_LLAMA_FAULTS: 'step:20', SHUTDOWN_GRACE_MS: '600000' })
  const { rest } = await streamStarted(url, { message: 'یک داستان بنویس.', stream: true })
  const closed = service.close()
  await expect(fetch(`${url}/health`)).rejects.toThrow()
  const events = parseSse(await rest)
  expect(events[events.length - 1].event).toBe('done')
  await closed
  expect(service.llm.state).toBe('stopped')
})

test('replies still running when the grace period ends are cancelled with an error event', async () => {
  const { service, url } = await start({ LLM_MAX_TOKENS: '2000', NAPI_LLAMA_FAULTS: 'step:20', SHUTDOWN_GRACE_MS: '0' })
  const { rest } = await streamStarted(url, { message: 'یک داستان خیلی بلند بنویس.', stream: true })
  await service.close()
  const events = parseSse(await rest)
  const last = events[events.length - 1]
  expect(last.event).toBe('error')
  expect(JSON.parse(last.data).error.code).toBe('aborted')
})
