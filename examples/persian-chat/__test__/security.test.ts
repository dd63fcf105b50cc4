// Safe on a network, against the real service and model: named keys (compared as digests, never
// logged), /metrics behind the key, the Host check against DNS rebinding, security headers on
// every response, /health without file paths, internal failures without internals, and the
// configuration that refuses to expose an unprotected service.
import fs from 'node:fs'
import http from 'node:http'
import os from 'node:os'
import path from 'node:path'
import request from 'supertest'
import { ConfigError, isLoopback } from '../src/config'
import { ApiKeys } from '../src/auth'
import { withoutPaths } from '../src/routes/system'
import { type TestService, parseSse, startTestService, testConfig } from './helpers'

const KEYS = { alice: 'alice-key-0123456789', bob: 'b0b-other-key' }
const API_KEYS = `alice:${KEYS.alice},bob:${KEYS.bob}`
const chatBody = { messages: [{ role: 'user', content: 'سلام' }], max_tokens: 4 }

/** A GET over a real socket with a chosen Host header. */
function getWithHost(url: string, pathname: string, host: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${pathname}`, { headers: { Host: host } }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (d: string) => (body += d))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

describe('configuration', () => {
  test('a non-loopback HOST without a key is refused unless ALLOW_NO_AUTH=true', () => {
    expect(() => testConfig({ HOST: '0.0.0.0' })).toThrow(ConfigError)
    expect(() => testConfig({ HOST: '0.0.0.0' })).toThrow(/API_KEY.*ALLOW_NO_AUTH/)
    expect(() => testConfig({ HOST: '192.168.1.10' })).toThrow(ConfigError)
    expect(testConfig({ HOST: '0.0.0.0', API_KEY: 'k' }).apiKeys).toEqual([{ name: 'default', key: 'k' }])
    expect(testConfig({ HOST: '0.0.0.0', API_KEYS }).apiKeys.map((k) => k.name)).toEqual(['alice', 'bob'])
    expect(testConfig({ HOST: '0.0.0.0', ALLOW_NO_AUTH: 'true' }).apiKeys).toEqual([])
    for (const host of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(isLoopback(host)).toBe(true)
    for (const host of ['0.0.0.0', '::', '10.0.0.1', 'example.com']) expect(isLoopback(host)).toBe(false)
  })

  test('API_KEYS must be name:key pairs with distinct names and keys', () => {
    expect(() => testConfig({ API_KEYS: 'no-colon' })).toThrow(/name:key/)
    expect(() => testConfig({ API_KEYS: 'a b:k' })).toThrow(/name:key/)
    expect(() => testConfig({ API_KEYS: 'a:k1,a:k2' })).toThrow(/share a name/)
    expect(() => testConfig({ API_KEYS: 'a:k,b:k' })).toThrow(/same key/)
    expect(() => testConfig({ API_KEY: 'k', API_KEYS: 'default:x' })).toThrow(/share a name/)
    // A key may hold colons: only the first one separates the name.
    expect(testConfig({ API_KEYS: 'svc:a:b:c' }).apiKeys).toEqual([{ name: 'svc', key: 'a:b:c' }])
  })

  test('keys are compared as digests: any length, only the exact key matches', () => {
    const keys = new ApiKeys([
      { name: 'short', key: 'k' },
      { name: 'long', key: 'x'.repeat(500) },
    ])
    expect(keys.identify('k')).toBe('short')
    expect(keys.identify('x'.repeat(500))).toBe('long')
    for (const wrong of ['', 'K', 'k ', 'x'.repeat(499), 'x'.repeat(501)]) expect(keys.identify(wrong)).toBeNull()
  })
})

describe('named keys, /metrics and logs', () => {
  let service: TestService
  const logged: string[] = []
  let spies: jest.SpyInstance[] = []

  beforeAll(async () => {
    service = await startTestService({ API_KEYS, LOG_REQUESTS: 'true' })
    const capture = (stream: NodeJS.WriteStream) =>
      jest.spyOn(stream, 'write').mockImplementation(((chunk: string | Uint8Array) => {
        logged.push(String(chunk))
        return true
      }) as typeof stream.write)
    spies = [capture(process.stdout), capture(process.stderr)]
  })
  afterAll(async () => {
    for (const spy of spies) spy.mockRestore()
    await service.close()
  })

  test('each named key works; a wrong, missing or near-miss key is 401', async () => {
    for (const key of Object.values(KEYS)) {
      const res = await request(service.app).post('/v1/chat/completions').set('Authorization', `Bearer ${key}`).send(chatBody)
      expect(res.status).toBe(200)
    }
    for (const header of [undefined, 'Bearer nope', `Bearer ${KEYS.alice}x`, `Bearer ${KEYS.alice.slice(0, -1)}`, KEYS.alice]) {
      const req = request(service.app).post('/v1/chat/completions')
      const res = await (header ? req.set('Authorization', header) : req).send(chatBody)
      expect(res.status).toBe(401)
      expect(res.body.error.code).toBe('invalid_api_key')
    }
  })

  test('/metrics needs a key, and counts requests by key name', async () => {
    expect((await request(service.app).get('/metrics')).status).toBe(401)
    expect((await request(service.app).get('/metrics').set('Authorization', 'Bearer wrong')).status).toBe(401)
    const res = await request(service.app).get('/metrics').set('Authorization', `Bearer ${KEYS.bob}`)
    expect(res.status).toBe(200)
    expect(res.text).toMatch(/^http_client_requests_total\{client="alice",route="\/v1\/chat\/completions",status="200"\} 1$/m)
    expect(res.text).toMatch(/^http_client_requests_total\{client="bob",route="\/v1\/chat\/completions",status="200"\} 1$/m)
    expect(res.text).toMatch(/^http_client_requests_total\{client="anonymous",route="\/v1\/chat\/completions",status="401"\} 5$/m)
    for (const key of Object.values(KEYS)) expect(res.text).not.toContain(key)
    // /health stays open for probes.
    expect((await request(service.app).get('/health')).status).toBe(200)
  })

  test('log lines name the client by its key name; no key ever reaches the log', async () => {
    const lines = logged
      .join('')
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l))
    expect(lines.some((l) => l.client === 'alice' && l.status === '200')).toBe(true)
    expect(lines.some((l) => l.client === 'bob')).toBe(true)
    expect(lines.some((l) => l.status === '401' && l.client === undefined)).toBe(true)
    const all = logged.join('')
    for (const key of [...Object.values(KEYS), 'nope']) expect(all).not.toContain(key)
  })

  test('METRICS_PUBLIC=true opens /metrics without a key; the API still needs one', async () => {
    const open = await startTestService({ API_KEYS, METRICS_PUBLIC: 'true' }, false)
    try {
      expect((await request(open.app).get('/metrics')).status).toBe(200)
      expect((await request(open.app).get('/v1/models')).status).toBe(401)
    } finally {
      await open.close()
    }
  })
})

describe('Host check (DNS rebinding)', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService({ ALLOWED_HOSTS: 'chat.example.org' })
  })
  afterAll(() => service.close())

  test('a rebinding name is refused on every route, the page and /health included', async () => {
    const port = new URL(service.url).port
    for (const pathname of ['/', '/health', '/v1/models', '/metrics', '/app.js']) {
      const res = await getWithHost(service.url, pathname, `attacker.example:${port}`)
      expect(res.status).toBe(403)
      expect(JSON.parse(res.body).error).toMatchObject({ code: 'host_not_allowed', type: 'permission_error' })
    }
    const post = await request(service.app).post('/v1/chat/completions').set('Host', 'attacker.example').send(chatBody)
    expect(post.status).toBe(403)
    expect(service.llm.metrics()!.requestsTotal).toBe(0) // the model never saw it
  })

  test('IP literals, localhost and ALLOWED_HOSTS are answered', async () => {
    const port = new URL(service.url).port
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, 'LOCALHOST', `[::1]:${port}`, '10.1.2.3', `chat.example.org:${port}`]) {
      expect((await getWithHost(service.url, '/health', host)).status).toBe(200)
    }
    expect((await getWithHost(service.url, '/health', 'sub.chat.example.org')).status).toBe(403)
    expect((await getWithHost(service.url, '/health', 'bad host')).status).toBe(403)
    expect((await request(service.app).post('/v1/chat/completions').send(chatBody)).status).toBe(200)
  })

  test('on a non-loopback HOST without ALLOWED_HOSTS, any name is answered (the key protects it)', async () => {
    const open = await startTestService({ HOST: '0.0.0.0', API_KEY: 'k' }, false)
    try {
      expect((await getWithHost(open.url, '/health', 'chat.example.com')).status).toBe(503) // answered; the model is not loaded
    } finally {
      await open.close()
    }
  })
})

describe('security headers', () => {
  let service: TestService
  beforeAll(async () => {
    service = await startTestService({ API_KEY: 'k' }, false)
  })
  afterAll(() => service.close())

  test.each([
    ['the page', () => request(service.app).get('/'), 200],
    ['a script', () => request(service.app).get('/app.js'), 200],
    ['/health', () => request(service.app).get('/health'), 503],
    ['a 401', () => request(service.app).get('/v1/models'), 401],
    ['a 404', () => request(service.app).get('/nothing'), 404],
    ['a 403', () => request(service.app).get('/').set('Host', 'evil.example'), 403],
  ])('%s carries CSP, frame-ancestors, base-uri, Referrer-Policy and nosniff', async (_name, send, status) => {
    const res = await send()
    expect(res.status).toBe(status)
    const csp = res.headers['content-security-policy']
    expect(csp).toMatch(/default-src 'self'/)
    expect(csp).toMatch(/frame-ancestors 'none'/)
    expect(csp).toMatch(/base-uri 'none'/)
    expect(csp).not.toMatch(/upgrade-insecure-requests/)
    expect(res.headers['referrer-policy']).toBe('no-referrer')
    expect(res.headers['x-content-type-options']).toBe('nosniff')
    expect(res.headers['x-frame-options']).toBe('SAMEORIGIN')
    expect(res.headers['x-powered-by']).toBeUndefined()
  })
})

describe('/health reveals no file paths', () => {
  test('a model that fails to load: the error names the file, not where it is', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'persian-chat-secret-dir-'))
    const model = path.join(dir, 'broken.gguf')
    fs.writeFileSync(model, 'not a model')
    const service = await startTestService({ LLM_MODEL_PATH: model }, false)
    try {
      await expect(service.llm.start()).rejects.toMatchObject({ code: 'MODEL_LOAD_FAILED' })
      const health = await request(service.app).get('/health')
      expect(health.status).toBe(503)
      expect(health.body.error).toEqual(expect.any(String))
      expect(health.text).not.toContain(dir)
      expect(health.text).not.toContain(os.tmpdir())
    } finally {
      await service.close()
      fs.rmSync(dir, { recursive: true, force: true })
    }
  })

  test('withoutPaths keeps the last part of each path and leaves URLs alone', () => {
    expect(withoutPaths('failed to open /srv/models/x.gguf: no such file')).toBe('failed to open x.gguf: no such file')
    expect(withoutPaths("cannot read 'C:\\models\\y.gguf'")).toBe("cannot read 'y.gguf'")
    expect(withoutPaths('GET http://10.0.0.1:8080/v1/models failed')).toBe('GET http://10.0.0.1:8080/v1/models failed')
    expect(withoutPaths(null)).toBeNull()
  })
})

describe('internal failures', () => {
  let service: TestService
  const logged: string[] = []
  let spy: jest.SpyInstance

  beforeAll(async () => {
    // The engine's first decode fails (test-only fault): an INTERNAL error with an engine message.
    service = await startTestService({ NAPI_LLAMA_FAULTS: 'decode:1' })
    spy = jest.spyOn(process.stderr, 'write').mockImplementation(((chunk: string | Uint8Array) => {
      logged.push(String(chunk))
      return true
    }) as typeof process.stderr.write)
  })
  afterAll(async () => {
    spy.mockRestore()
    await service.close()
  })

  test('the client gets a fixed message with the request id; the detail goes to the log under it', async () => {
    const res = await request(service.app).post('/v1/chat/completions').send(chatBody)
    expect(res.status).toBe(500)
    const id = res.headers['x-request-id']
    expect(res.body.error).toEqual({ message: `Internal server error (request id ${id})`, type: 'server_error', param: null, code: 'internal_error' })
    expect(res.text).not.toMatch(/decode|llama|injected/)
    expect(logged.join('')).toMatch(new RegExp(`internal error \\(request ${id}\\): .*decode failed: injected fault`))
  })

  test('the next request works', async () => {
    const res = await request(service.app).post('/api/chat').send({ message: 'سلام', stream: true })
    expect(res.status).toBe(200)
    expect(parseSse(res.text).some((e) => e.event === 'done')).toBe(true)
  })
})
