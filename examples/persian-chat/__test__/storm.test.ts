// Many clients at once over real HTTP, half of them hanging up at random moments (before the
// reply starts, mid-stream, while waiting for JSON). The well-behaved clients among them must
// get complete replies, and afterwards the service must be idle and healthy.
import http from 'node:http'
import request from 'supertest'
import { type TestService, parseSse, startTestService, waitFor } from './helpers'

let service: TestService

beforeAll(async () => {
  service = await startTestService({ LLM_MAX_TOKENS: '24', LLM_PARALLEL: '4', LLM_MAX_QUEUE: '64' })
})

afterAll(() => service.close())

// A fixed pseudo-random sequence: the same storm on every run.
function rng(seed: number) {
  return () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff
    return seed / 0x7fffffff
  }
}

interface Outcome {
  status: number | null
  body: string
  hungUp: boolean
}

function post(path: string, body: object, hangUpAfterMs: number | null): Promise<Outcome> {
  return new Promise((resolve) => {
    const payload = Buffer.from(JSON.stringify(body))
    const req = http.request(`${service.url}${path}`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', 'Content-Length': payload.length },
    })
    let status: number | null = null
    let text = ''
    let hungUp = false
    req.on('response', (res) => {
      status = res.statusCode ?? null
      res.setEncoding('utf8')
      res.on('data', (d: string) => (text += d))
      res.on('end', () => resolve({ status, body: text, hungUp }))
      res.on('error', () => undefined)
    })
    req.on('error', () => resolve({ status, body: text, hungUp }))
    if (hangUpAfterMs !== null) {
      setTimeout(() => {
        hungUp = true
        req.destroy()
        resolve({ status, body: text, hungUp })
      }, hangUpAfterMs)
    }
    req.end(payload)
  })
}

test('40 concurrent clients, half hanging up at random: the others get full replies, the service ends idle', async () => {
  const random = rng(42)
  const before = service.llm.metrics()!
  const kinds = [
    (m: string) => ['/api/chat', { message: m, stream: true }] as const,
    (m: string) => ['/api/chat', { message: m }] as const,
    (m: string) => ['/v1/chat/completions', { messages: [{ role: 'user', content: m }], stream: true }] as const,
    (m: string) => ['/v1/chat/completions', { messages: [{ role: 'user', content: m }] }] as const,
  ]
  const clients = Array.from({ length: 40 }, (_, i) => {
    const [path, body] = kinds[i % kinds.length](`پرسش شمارهٔ ${i}: یک داستان بگو.`)
    const hangUp = random() < 0.5 ? Math.floor(random() * 1000) : null
    return { path, hangUp, outcome: post(path, body, hangUp) }
  })
  const outcomes = await Promise.all(clients.map((c) => c.outcome))

  let completed = 0
  clients.forEach((client, i) => {
    const o = outcomes[i]
    if (o.hungUp) return
    completed++
    expect(o.status).toBe(200)
    if (client.path === '/api/chat' && o.body.startsWith('data:')) {
      expect(parseSse(o.body).some((e) => e.event === 'done')).toBe(true)
    } else if (o.body.startsWith('data:')) {
      expect(o.body.trimEnd().endsWith('data: [DONE]')).toBe(true)
    } else {
      const json = JSON.parse(o.body)
      expect(json.reply ?? json.choices[0].message.content).toEqual(expect.any(String))
    }
  })
  expect(completed).toBeGreaterThan(10)

  // Every request the engine saw ended as completed or aborted; nothing is left running.
  await waitFor(() => {
    const m = service.llm.metrics()!
    return m.requestsActive === 0 && m.requestsQueued === 0
  }, 20_000, 'the engine to go idle')
  const after = service.llm.metrics()!
  const seen = after.requestsTotal - before.requestsTotal
  expect(after.requestsCompleted - before.requestsCompleted + (after.requestsAborted - before.requestsAborted)).toBe(seen)
  expect(after.requestsFailed - before.requestsFailed).toBe(0)
  expect(after.requestsCompleted - before.requestsCompleted).toBeGreaterThanOrEqual(completed)

  const health = await request(service.app).get('/health')
  expect(health.status).toBe(200)
  expect(health.body.slotsBusy).toBe(0)
  const next = await request(service.app).post('/api/chat').send({ message: 'سلام' })
  expect(next.status).toBe(200)
})
