// Every error code of the README's error table, each followed by a request that must still succeed.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import * as llama from '../index'
import { SMOLLM2, FAST, LONG_PROMPT, collect, failure } from './helpers'

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'napi-llama-errors-'))
const ok = async () => {
  const g = await llama.generate('Hello', { temperature: 0, maxTokens: 4 })
  expect(g.completionTokens).toBeGreaterThan(0)
}

describe('before initialize', () => {
  test('generate, stream, tokenize and countTokens fail with MODEL_NOT_LOADED', async () => {
    expect((await failure(llama.generate('hi'))).code).toBe('MODEL_NOT_LOADED')
    expect((await failure(collect(llama.stream('hi')))).code).toBe('MODEL_NOT_LOADED')
    expect((await failure(() => llama.tokenize('hi'))).code).toBe('MODEL_NOT_LOADED')
    expect((await failure(() => llama.countTokens('hi'))).code).toBe('MODEL_NOT_LOADED')
    expect(llama.health().status).toBe('unloaded')
    expect(llama.metrics().requestsTotal).toBe(0)
  })

  test('shutdown without a model is a no-op', async () => {
    await llama.shutdown()
  })
})

/** A copy of SmolLM2 with one u32 metadata value replaced (key, then u32 type, then value). */
function patchedSmolLM2(name: string, key: string, value: number): string {
  const bytes = fs.readFileSync(SMOLLM2)
  const at = bytes.indexOf(Buffer.from(key)) + key.length
  expect(bytes.readUInt32LE(at)).toBe(4) // GGUF_TYPE_UINT32
  bytes.writeUInt32LE(value, at + 4)
  const p = path.join(tmp, name)
  fs.writeFileSync(p, bytes)
  return p
}

describe('bad model files: MODEL_LOAD_FAILED naming the path', () => {
  const cases: Array<[string, () => string]> = [
    ['a missing file', () => path.join(tmp, 'missing.gguf')],
    ['a text file renamed .gguf', () => {
      const p = path.join(tmp, 'text.gguf')
      fs.writeFileSync(p, 'This is not a model. '.repeat(100))
      return p
    }],
    ['a truncated GGUF', () => {
      const p = path.join(tmp, 'truncated.gguf')
      const fd = fs.openSync(SMOLLM2, 'r')
      const buf = Buffer.alloc(5_000_000)
      fs.readSync(fd, buf, 0, buf.length, 0)
      fs.closeSync(fd)
      fs.writeFileSync(p, buf)
      return p
    }],
    ['an empty file', () => {
      const p = path.join(tmp, 'empty.gguf')
      fs.writeFileSync(p, '')
      return p
    }],
    ['a directory', () => tmp],
    // One metadata value patched: llama.cpp's loader asserts (aborts the process) on the first
    // and cannot represent the second.
    ['a GGUF that says it has 0 layers', () => patchedSmolLM2('block0.gguf', 'llama.block_count', 0)],
    ['a GGUF with a trained context of 2^32 - 1', () => patchedSmolLM2('ctxmax.gguf', 'llama.context_length', 0xffffffff)],
  ]
  test.each(cases)('%s', async (_name, make) => {
    const modelPath = make()
    const err = await failure(llama.initialize({ modelPath, ...FAST }))
    expect(err.code).toBe('MODEL_LOAD_FAILED')
    expect(err.message).toContain(modelPath)
    expect(llama.health().status).toBe('error')
    expect(llama.health().lastError).toContain(modelPath)
  })

  test('options are validated before loading', async () => {
    expect((await failure(llama.initialize({ modelPath: SMOLLM2, threads: -1 }))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(llama.initialize({ modelPath: SMOLLM2, contextSize: NaN }))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(llama.initialize({ modelPath: SMOLLM2, contextSize: 10_000_000 }))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(llama.initialize({} as never))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(llama.initialize({ modelPath: SMOLLM2, logLevel: 'loud' as never }))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(llama.initialize({ modelPath: SMOLLM2, threads: '2' as never }))).code).toBe('INVALID_ARGUMENT')
  })

  test('a KV cache larger than memory is refused before llama.cpp allocates it', async () => {
    // The fault makes the engine see 16 MiB of memory, less than the 22.5 MiB SmolLM2's cache
    // needs at 1024 cells. For real, clearing the cache would bring in the OOM killer wherever
    // overcommit lets the allocation through.
    const err = await failure(llama.initialize({ modelPath: SMOLLM2, ...FAST, parallel: 1, __faults: 'memory:16777216' } as never))
    expect(err.code).toBe('MODEL_LOAD_FAILED')
    expect(err.message).toMatch(/KV cache .* GiB/)
    expect(err.message).toContain(SMOLLM2)
    expect(llama.health().status).toBe('error')
  })
})

describe('with a model', () => {
  beforeAll(async () => {
    await llama.initialize({ modelPath: SMOLLM2, ...FAST, parallel: 1, maxQueue: 2 })
  })
  afterAll(async () => {
    await llama.shutdown()
  })

  test('ALREADY_INITIALIZED, and replace: true swaps the model', async () => {
    const err = await failure(llama.initialize({ modelPath: SMOLLM2, ...FAST }))
    expect(err.code).toBe('ALREADY_INITIALIZED')
    await ok()
    const info = await llama.initialize({ modelPath: SMOLLM2, ...FAST, parallel: 1, maxQueue: 2, replace: true })
    expect(info.parallel).toBe(1)
    await ok()
  })

  test('initialize({ replace: true }) with bad options is INVALID_ARGUMENT and keeps the loaded model', async () => {
    for (const bad of [{ threads: -1 }, { logLevel: 'loud' }, { contextSize: 'big' }]) {
      const err = await failure(llama.initialize({ modelPath: SMOLLM2, replace: true, ...bad } as never))
      expect(err.code).toBe('INVALID_ARGUMENT')
      expect(llama.health().status).toBe('ok')
      await ok()
    }
  })

  test.each([
    ['an empty prompt', '', {}],
    ['an empty message list', [], {}],
    ['an unknown role', [{ role: 'wizard', content: 'hi' }], {}],
    ['a NaN temperature', 'hi', { temperature: NaN }],
    ['a negative maxTokens', 'hi', { maxTokens: -5 }],
    ['an infinite topP', 'hi', { topP: Infinity }],
    ['a huge seed', 'hi', { seed: 2 ** 40 }],
    ['a string where a number belongs', 'hi', { maxTokens: '10' }],
    ['invalid GBNF', 'hi', { grammar: 'root ::= ( "a" ' }],
    ['an invalid JSON schema string', 'hi', { jsonSchema: '{ nope' }],
    ['a non-array stop', 'hi', { stop: 5 }],
  ])('INVALID_ARGUMENT for %s', async (_name, input, options) => {
    const err = await failure(llama.generate(input as never, options as never))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message.length).toBeGreaterThan(10)
    const streamErr = await failure(collect(llama.stream(input as never, options as never)))
    expect(streamErr.code).toBe('INVALID_ARGUMENT')
    await ok()
  })

  test('CONTEXT_OVERFLOW gives both token counts', async () => {
    const err = await failure(llama.generate('word '.repeat(3000), { maxTokens: 4 }))
    expect(err.code).toBe('CONTEXT_OVERFLOW')
    expect(err.message).toMatch(/\d+ tokens/)
    expect(err.message).toContain('1024')
    await ok()
  })

  test('TIMEOUT within one decode step, then the engine serves again', async () => {
    const started = Date.now()
    const err = await failure(llama.generate(LONG_PROMPT, { maxTokens: 500, timeoutMs: 150 }))
    expect(err.code).toBe('TIMEOUT')
    expect(Date.now() - started).toBeLessThan(2000)
    await ok()
  })

  test('ABORTED by an AbortSignal mid-stream', async () => {
    const controller = new AbortController()
    const chunks: string[] = []
    const err = await failure(
      (async () => {
        for await (const c of llama.stream(LONG_PROMPT, { maxTokens: 500, signal: controller.signal })) {
          chunks.push(c.text)
          if (chunks.length === 3) controller.abort()
        }
      })(),
    )
    expect(err.code).toBe('ABORTED')
    expect(chunks.length).toBeGreaterThanOrEqual(3)
    const pre = new AbortController()
    pre.abort()
    expect((await failure(llama.generate('hi', { signal: pre.signal }))).code).toBe('ABORTED')
    const mid = new AbortController()
    const pending = failure(llama.generate(LONG_PROMPT, { maxTokens: 500, signal: mid.signal }))
    setTimeout(() => mid.abort(), 100)
    expect((await pending).code).toBe('ABORTED')
    await ok()
  })

  test('QUEUE_FULL beyond maxQueue waiting requests', async () => {
    // parallel 1 + maxQueue 2: one runs, two wait, the rest are refused.
    const runs = Array.from({ length: 5 }, () =>
      llama.generate('Count to ten:', { temperature: 0, maxTokens: 12 }).then(
        () => 'ok',
        (e) => e.code,
      ),
    )
    const results = await Promise.all(runs)
    expect(results.filter((r) => r === 'ok').length).toBe(3)
    expect(results.filter((r) => r === 'QUEUE_FULL').length).toBe(2)
    await ok()
  })
})

describe('shutdown', () => {
  test('with a request in flight: it rejects ABORTED and the engine can load again', async () => {
    await llama.initialize({ modelPath: SMOLLM2, ...FAST })
    // One request streaming (its first chunk has arrived) and one waiting in the queue.
    const reader = llama.stream(LONG_PROMPT, { maxTokens: 500, seed: 3 }).getReader()
    expect((await reader.read()).done).toBe(false)
    // failure() attaches handlers at once: the rejections arrive during shutdown().
    const pending = failure(llama.generate(LONG_PROMPT, { maxTokens: 500 }))
    const streamed = failure(
      (async () => {
        for (;;) if ((await reader.read()).done) return
      })(),
    )
    await llama.shutdown()
    expect((await pending).code).toBe('ABORTED')
    expect((await streamed).code).toBe('ABORTED')
    expect(llama.health().status).toBe('unloaded')
    expect((await failure(llama.generate('hi'))).code).toBe('MODEL_NOT_LOADED')
    await llama.initialize({ modelPath: SMOLLM2, ...FAST })
    await ok()
    await llama.shutdown()
    await llama.shutdown()
  })

  test('with requests running and queued: all settle ABORTED, then initialize works again', async () => {
    await llama.initialize({ modelPath: SMOLLM2, ...FAST, parallel: 1 })
    const running = failure(llama.generate(LONG_PROMPT, { maxTokens: 500, temperature: 0 }))
    const queued = [1, 2, 3].map((i) => failure(llama.generate(`${LONG_PROMPT} ${i}`, { maxTokens: 500 })))
    // They count as queued at once (the inference thread may already have taken the first);
    // one takes the slot at the next step (the first may be slow on a busy machine).
    expect(llama.health().queueDepth).toBeGreaterThanOrEqual(3)
    for (let i = 0; i < 200 && llama.health().slotsBusy < 1; i++) await new Promise((r) => setTimeout(r, 25))
    const { queueDepth, slotsBusy } = llama.health()
    await llama.shutdown()
    expect({ queueDepth, slotsBusy }).toEqual({ queueDepth: 3, slotsBusy: 1 })
    for (const p of [running, ...queued]) expect((await p).code).toBe('ABORTED')
    await llama.initialize({ modelPath: SMOLLM2, ...FAST })
    await ok()
    await llama.shutdown()
  })

  test('initialize twice at once: one loads, the other is ALREADY_INITIALIZED', async () => {
    await llama.shutdown() // whatever an earlier test left
    const results = await Promise.allSettled([
      llama.initialize({ modelPath: SMOLLM2, ...FAST }),
      llama.initialize({ modelPath: SMOLLM2, ...FAST }),
    ])
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1)
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult
    expect(rejected.reason.code).toBe('ALREADY_INITIALIZED')
    await ok()
    await llama.shutdown()
  })
})
