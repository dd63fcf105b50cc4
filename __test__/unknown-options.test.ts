// Option keys the API does not know are INVALID_ARGUMENT naming the key and, when one is close,
// the known name it was probably meant to be; before, they were silently ignored.
import * as llama from '../index'
import { Engine } from '../index'
import type { GenerateOptions } from '../index'
import { SMOLLM2, collect, failure } from './helpers'

const LIGHT = { modelPath: SMOLLM2, threads: 1, contextSize: 512 }

describe('generate and stream options', () => {
  let engine: Engine
  beforeAll(async () => {
    engine = await Engine.load({ ...LIGHT, parallel: 1 })
  })
  afterAll(async () => {
    await engine.unload()
  })

  async function stillServes() {
    const g = await engine.generate('The capital of France is', { temperature: 0, maxTokens: 3 })
    expect(g.completionTokens).toBeGreaterThan(0)
  }

  test('max_tokens is refused, naming it and maxTokens; the next request works', async () => {
    // @ts-expect-error the public type rejects the key too
    const err = await failure(engine.generate('hi', { max_tokens: 3 }))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).toBe('unknown option "max_tokens" in generate options: did you mean "maxTokens"?')
    await stillServes()
  })

  test.each([
    ['temprature', 'temperature'], // one edit
    ['MaxTokens', 'maxTokens'], // case
    ['top_k', 'topK'], // underscore and case
    ['stops', 'stop'],
    ['jsonschema', 'jsonSchema'],
  ])('%s suggests %s', async (key, known) => {
    const err = await failure(engine.generate('hi', { [key]: 1 } as GenerateOptions))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).toContain(`"${key}"`)
    expect(err.message).toContain(`did you mean "${known}"?`)
  })

  test('a key with no close match gets no suggestion', async () => {
    for (const key of ['completelyUnrelated', 'foo', 'x']) {
      const err = await failure(engine.generate('hi', { [key]: 1 } as GenerateOptions))
      expect(err.code).toBe('INVALID_ARGUMENT')
      expect(err.message).toBe(`unknown option "${key}" in generate options`)
    }
  })

  test('stream() with an unknown key errors the stream with INVALID_ARGUMENT', async () => {
    const err = await failure(collect(engine.stream('hi', { maxTokens: 3, max_token: 3 } as GenerateOptions)))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).toContain('"max_token"')
    expect(err.message).toContain('did you mean "maxTokens"?')
    // The same options without the stray key stream normally.
    const { final } = await collect(engine.stream('hi', { maxTokens: 3, temperature: 0 }))
    expect(final?.completionTokens).toBeGreaterThan(0)
  })

  test('an unknown key whose value is undefined is still unknown; a known one set to undefined is not', async () => {
    const err = await failure(engine.generate('hi', { maxTokens: 2, seeed: undefined } as GenerateOptions))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).toContain('did you mean "seed"?')
    const g = await engine.generate('Hi', { maxTokens: 2, seed: undefined, stop: undefined })
    expect(g.completionTokens).toBeGreaterThan(0)
  })

  test('only own enumerable string keys count: inherited properties, symbols and hidden keys are fine', async () => {
    class Options {
      maxTokens = 2
      temperature = 0
      describe() {
        return 'greedy, two tokens'
      }
      get label() {
        return 'inherited getter'
      }
    }
    const inherited = Object.create({ unrelated: true, maxTokens: 2 }) as GenerateOptions
    const withSymbol = { maxTokens: 2, [Symbol('tag')]: 'x' }
    const hidden = Object.defineProperty({ maxTokens: 2 }, 'notAnOption', { value: 1, enumerable: false })
    for (const options of [new Options(), inherited, withSymbol, hidden]) {
      const g = await engine.generate('Hi', options as GenerateOptions)
      expect(g.completionTokens).toBeLessThanOrEqual(2)
    }
  })

  test('the first unknown key is reported even when a known key is also wrong', async () => {
    const err = await failure(engine.generate('hi', { maxTokens: 'many', colour: 'red' } as never))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).toContain('"colour"')
    await stillServes()
  })
})

describe('load options', () => {
  test('Engine.load({ modelPath, foo: 1 }) is INVALID_ARGUMENT naming foo, before any loading', async () => {
    // @ts-expect-error the public type rejects the key too
    const err = await failure(Engine.load({ ...LIGHT, foo: 1 }))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).toBe('unknown option "foo" in load options')
  })

  test('a misspelled load option suggests the known name; generate options are not suggested there', async () => {
    const cases: Array<[string, string | null]> = [
      ['context_size', 'contextSize'],
      ['thread', 'threads'],
      ['gpu_layers', 'gpuLayers'],
      ['onprogress', 'onProgress'],
      ['maxTokens', null],
      // The test-only __faults option is never offered.
      ['faults', null],
    ]
    for (const [key, known] of cases) {
      const err = await failure(Engine.load({ ...LIGHT, [key]: 1 } as never))
      expect(err.code).toBe('INVALID_ARGUMENT')
      expect(err.message).toContain(`"${key}"`)
      if (known) expect(err.message).toContain(`did you mean "${known}"?`)
      else expect(err.message).not.toContain('did you mean')
    }
  })

  test('Engine.load accepts replace (and ignores it) and the test-only __faults', async () => {
    const engine = await Engine.load({ ...LIGHT, parallel: 1, replace: true, __faults: '' } as never)
    try {
      expect((await engine.generate('Hi', { maxTokens: 2 })).completionTokens).toBeGreaterThan(0)
    } finally {
      await engine.unload()
    }
  })
})

describe('initialize', () => {
  afterEach(async () => {
    await llama.shutdown()
  })

  test('a misspelled contextsize suggests contextSize; health() stays unloaded', async () => {
    const { contextSize, ...rest } = LIGHT
    // @ts-expect-error the public type rejects the key too
    const err = await failure(llama.initialize({ ...rest, contextsize: contextSize }))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).toBe('unknown option "contextsize" in load options: did you mean "contextSize"?')
    expect(llama.health()).toMatchObject({ status: 'unloaded', lastError: null })
  })

  test('initialize({ replace: true }) with an unknown key keeps the loaded model', async () => {
    await llama.initialize(LIGHT)
    const err = await failure(llama.initialize({ ...LIGHT, replace: true, parralel: 2 } as never))
    expect(err.code).toBe('INVALID_ARGUMENT')
    expect(err.message).toContain('did you mean "parallel"?')
    expect(llama.health().status).toBe('ok')
    expect((await llama.generate('Hi', { maxTokens: 2 })).completionTokens).toBeGreaterThan(0)
    // @ts-expect-error the public type rejects the key too
    const generateErr = await failure(llama.generate('Hi', { max_tokens: 2 }))
    expect(generateErr.code).toBe('INVALID_ARGUMENT')
  })
})
