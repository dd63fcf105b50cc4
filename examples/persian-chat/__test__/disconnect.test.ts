// A client that goes away cancels its generation: verified through the engine's metrics()
// (requestsAborted, requestsActive, completion tokens) and the service's /metrics counter.
import http from 'node:http'
import request from 'supertest'
import { type TestService, startTestService, waitFor } from './helpers'

let service: TestService

beforeAll(async () => {
  // A large cap: a reply that ran to the end would take ~10 s, so an early stop is unmistakable.
  service = await startTestService({ LLM_MAX_TOKENS: '500', LLM_PARALLEL: '2' })
})

afterAll(() => service.close())

/** Sends a POST and destroys the socket once `onData` says so (or after `afterMs`). */
function postThenHangUp(path: string, body: object, when: { afterFirstBytes?: boolean; afterMs?: number }): Promise<string> {
  return new Promise((resolve, reject) => {
    const payload = Buffer.from(JSON.stringify(body))
    const req = http.request(`${service.url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': payload.length },
    })
    let received = ''
    req.on('response', (res) => {
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => {
        received += chunk
        if (when.afterFirstBytes) req.destroy()
      })
    })
    req.on('error', () => undefined) // the destroy itself
    req.on('close', () => resolve(received))
    if (when.afterMs !== undefined) setTimeout(() => req.destroy(), when.afterMs)
    req.end(payload)
    setTimeout(() => reject(new Error('request neither hung up nor finished')), 30_000).unref()
  })
}

async function expectCancelled(before: NonNullable<ReturnType<TestService['llm']['metrics']>>) {
  await waitFor(() => service.llm.metrics()!.requestsAborted === before.requestsAborted + 1, 10_000, 'the generation to be aborted')
  await waitFor(() => service.llm.metrics()!.requestsActive === 0, 10_000, 'the slot to be freed')
  const after = service.llm.metrics()!
  expect(after.requestsCompleted).toBe(before.requestsCompleted)
  // Far fewer tokens than the 500 it would have generated.
  expect(after.completionTokensTotal - before.completionTokensTotal).toBeLessThan(200)
}

test('SSE client hanging up mid-stream (/api/chat) stops the generation', async () => {
  const before = service.llm.metrics()!
  const received = await postThenHangUp('/api/chat', { message: 'یک داستان خیلی بلند بنویس.', stream: true }, { afterFirstBytes: true })
  expect(received).toMatch(/^data: /)
  await expectCancelled(before)
  const metrics = await request(service.app).get('/metrics')
  expect(metrics.text).toMatch(/^chat_client_disconnects_total\{route="\/api\/chat"\} 1$/m)
})

test('SSE client hanging up mid-stream (/v1/chat/completions) stops the generation', async () => {
  const before = service.llm.metrics()!
  await postThenHangUp(
    '/v1/chat/completions',
    { messages: [{ role: 'user', content: 'یک داستان خیلی بلند بنویس.' }], stream: true, max_tokens: 500 },
    { afterFirstBytes: true },
  )
  await expectCancelled(before)
})

test('a streamed reply cut short still counts the tokens it was sent against its client; prompt tokens only a finished reply reports', async () => {
  const series = (name: string) => `${name}{client="anonymous",model="${service.llm.modelId}"}`
  const clientTokens = async () => {
    const text = (await request(service.app).get('/metrics')).text
    const value = (name: string) => Number(text.split('\n').find((l) => l.startsWith(series(name) + ' '))?.split(' ')[1] ?? 0)
    return { prompt: value('llm_client_prompt_tokens_total'), completion: value('llm_client_completion_tokens_total') }
  }
  const before = await clientTokens()
  const engineBefore = service.llm.metrics()!
  await postThenHangUp('/api/chat', { message: 'یک داستان خیلی بلند بنویس.', stream: true }, { afterFirstBytes: true })
  await expectCancelled(engineBefore)
  const after = await clientTokens()
  const generated = service.llm.metrics()!.completionTokensTotal - engineBefore.completionTokensTotal
  expect(after.completion - before.completion).toBeGreaterThan(0)
  expect(after.completion - before.completion).toBeLessThanOrEqual(generated)
  expect(after.prompt).toBe(before.prompt)
})

test('a non-streaming client hanging up while waiting stops the generation', async () => {
  const before = service.llm.metrics()!
  await postThenHangUp('/api/chat', { message: 'یک داستان خیلی بلند بنویس.' }, { afterMs: 400 })
  await expectCancelled(before)
})

test('the other stream is untouched, and the next request works', async () => {
  const before = service.llm.metrics()!
  const survivor = request(service.app).post('/v1/chat/completions').send({ messages: [{ role: 'user', content: 'سلام' }], max_tokens: 40, temperature: 0 }).then((r) => r)
  await postThenHangUp('/api/chat', { message: 'یک داستان خیلی بلند بنویس.', stream: true }, { afterFirstBytes: true })
  const res = await survivor
  expect(res.status).toBe(200)
  expect(res.body.usage.completion_tokens).toBeGreaterThan(0)
  await waitFor(() => service.llm.metrics()!.requestsAborted === before.requestsAborted + 1, 10_000, 'the abort')
  const next = await request(service.app).post('/v1/chat/completions').send({ messages: [{ role: 'user', content: 'سلام' }], max_tokens: 8 })
  expect(next.status).toBe(200)
})
