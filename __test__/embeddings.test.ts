// Embedding engines (`embeddings: true`) on the test models with mean pooling: batching must
// not change a vector, vectors are unit length, similar texts are nearer than unrelated ones,
// and every misuse is a coded error that leaves the engine serving.
import { Engine, initialize } from '../index'
import { FAST, GEMMA3, MINILM, SMOLLM2, failure } from './helpers'

const dot = (a: Float32Array, b: Float32Array) => a.reduce((sum, v, i) => sum + v * b[i], 0)
const maxDifference = (a: Float32Array, b: Float32Array) => a.reduce((m, v, i) => Math.max(m, Math.abs(v - b[i])), 0)

/**
 * A text's vector does not depend on what else shares its decode, up to rounding: llama.cpp
 * picks its attention and matrix kernels by batch size, so a text in a batch of a few hundred
 * tokens and the same text alone differ in the last bits, which the layers amplify (measured
 * on SmolLM2: cosine 0.9995 at worst, largest component difference 8e-3). Same batch, same
 * vectors: that is exact.
 */
function expectSameVector(batched: Float32Array, alone: Float32Array) {
  expect(batched).toHaveLength(alone.length)
  expect(dot(batched, alone)).toBeGreaterThan(0.999)
  expect(maxDifference(batched, alone)).toBeLessThan(2e-2)
}

const TEXTS = [
  'The cat sat on the mat.',
  'A cat was sitting on the mat.',
  'Interest rates rose again this quarter.',
  'کتاب روی میز است.',
]

describe('embeddings', () => {
  let engine: Engine

  beforeAll(async () => {
    engine = await Engine.load({ modelPath: SMOLLM2, ...FAST, contextSize: 256, embeddings: true, pooling: 'mean' })
  })

  afterAll(async () => {
    await engine.unload()
  })

  test('the engine reports its pooling and vector length', () => {
    expect(engine.info.pooling).toBe('mean')
    expect(engine.info.embeddingSize).toBe(576)
  })

  test('texts in one decode give the vectors each gives alone', async () => {
    const decodesBefore = engine.metrics().decodeCalls
    const together = await engine.embed(TEXTS)
    expect(engine.metrics().decodeCalls - decodesBefore).toBe(1)
    expect(together).toHaveLength(TEXTS.length)
    for (let i = 0; i < TEXTS.length; i++) {
      const [alone] = await engine.embed([TEXTS[i]])
      expect(together[i]).toBeInstanceOf(Float32Array)
      expect(together[i]).toHaveLength(576)
      expectSameVector(together[i], alone)
    }
  })

  test('vectors have length 1 unless normalize is false', async () => {
    const [unit] = await engine.embed([TEXTS[0]])
    expect(Math.sqrt(dot(unit, unit))).toBeCloseTo(1, 4)
    const [raw] = await engine.embed([TEXTS[0]], { normalize: false })
    const norm = Math.sqrt(dot(raw, raw))
    expect(Math.abs(norm - 1)).toBeGreaterThan(1e-3)
    expect(maxDifference(raw.map((v) => v / norm), unit)).toBeLessThan(1e-4)
  })

  test('a text is nearest to itself and its paraphrase, not to an unrelated text', async () => {
    const [cat, paraphrase, rates] = await engine.embed(TEXTS.slice(0, 3))
    const [again] = await engine.embed([TEXTS[0]])
    expect(dot(cat, again)).toBeCloseTo(1, 4)
    expect(dot(cat, paraphrase)).toBeGreaterThan(dot(cat, rates))
  })

  test('concurrent calls share a decode and each gets its own vectors in order', async () => {
    // `batch:3` holds the first decode until all three calls are queued: sharing is then
    // certain, not a race with the inference thread.
    const shared = await Engine.load({ modelPath: SMOLLM2, ...FAST, contextSize: 256, embeddings: true, __faults: 'batch:3' } as never)
    try {
      const lists = [TEXTS, [...TEXTS].reverse(), TEXTS.slice(1, 3)]
      const results = await Promise.all(lists.map((texts) => shared.embed(texts)))
      expect(shared.metrics().decodeCalls).toBe(1)
      const reference = await engine.embed(TEXTS)
      const byText = new Map(TEXTS.map((t, i) => [t, reference[i]]))
      results.forEach((vectors, li) => {
        expect(vectors).toHaveLength(lists[li].length)
        expect(vectors.promptTokens).toBeGreaterThan(lists[li].length)
        vectors.forEach((v, i) => expectSameVector(v, byText.get(lists[li][i]) as Float32Array))
      })
    } finally {
      await shared.unload()
    }
  })

  test('a failed decode fails the requests in it with INTERNAL; the next request works', async () => {
    const faulty = await Engine.load({ modelPath: SMOLLM2, ...FAST, contextSize: 256, embeddings: true, __faults: 'decode:1' } as never)
    try {
      expect((await failure(faulty.embed(TEXTS))).code).toBe('INTERNAL')
      expect(await faulty.embed(TEXTS)).toHaveLength(TEXTS.length)
    } finally {
      await faulty.unload()
    }
  })

  test('many texts in one call: more than fit one decode', async () => {
    const texts = Array.from({ length: 80 }, (_, i) => `Sentence ${i} about topic ${i % 5}.`)
    const vectors = await engine.embed(texts)
    expect(vectors).toHaveLength(80)
    const [alone] = await engine.embed([texts[79]])
    expectSameVector(vectors[79], alone)
    const again = await engine.embed(texts)
    expect(Math.max(...again.map((v, i) => maxDifference(v, vectors[i])))).toBe(0)
  })

  test('bad input is INVALID_ARGUMENT or CONTEXT_OVERFLOW naming the text, and the engine still serves', async () => {
    expect((await failure(engine.embed([]))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(engine.embed('one text' as unknown as string[]))).code).toBe('INVALID_ARGUMENT')
    const notString = await failure(engine.embed(['ok', 7 as unknown as string]))
    expect(notString).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('texts[1]') })
    const empty = await failure(engine.embed(['ok', '']))
    expect(empty).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('text 1') })
    const long = await failure(engine.embed(['short', 'word '.repeat(1000)]))
    expect(long).toMatchObject({ code: 'CONTEXT_OVERFLOW', message: expect.stringContaining('text 1') })
    expect((await failure(engine.embed(['x'], { normalise: true } as never))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(engine.rank('query', ['document']))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(engine.generate('Hello'))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(engine.embed(['x'], { signal: AbortSignal.abort() }))).code).toBe('ABORTED')
    expect(await engine.embed(['still serving'])).toHaveLength(1)
  })
})

describe('a real sentence-embedding model (all-MiniLM-L6-v2, BERT)', () => {
  let minilm: Engine

  beforeAll(async () => {
    minilm = await Engine.load({ modelPath: MINILM, threads: 1, embeddings: true })
  })

  afterAll(async () => {
    await minilm.unload()
  })

  test('an encoder model cannot generate: loading it without embeddings is INVALID_ARGUMENT', async () => {
    const refused = await failure(Engine.load({ modelPath: MINILM, threads: 1 }))
    expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('embeddings: true') })
  })

  test('pools by the mean its GGUF declares, 384-long unit vectors, WordPiece tokens', async () => {
    expect(minilm.info).toMatchObject({ architecture: 'bert', pooling: 'mean', embeddingSize: 384, contextSize: 512 })
    expect(Array.from(minilm.tokenize('hello world'))).toEqual([7592, 2088])
    const [v] = await minilm.embed(['hello world'])
    expect(Math.sqrt(dot(v, v))).toBeCloseTo(1, 4)
  })

  test('paraphrases are near, unrelated sentences far (its known behaviour)', async () => {
    const [food, bread, movie] = await minilm.embed(['A man is eating food.', 'A man is eating a piece of bread.', 'The new movie is awesome.'])
    expect(dot(food, bread)).toBeGreaterThan(0.6)
    expect(Math.abs(dot(food, movie))).toBeLessThan(0.3)
    expect(dot(food, bread)).toBeGreaterThan(dot(food, movie) + 0.4)
  })

  test('a text in a batch of many gives the vector it gives alone', async () => {
    const texts = Array.from({ length: 40 }, (_, i) => `Sentence ${i} is about topic number ${i % 6}.`)
    const together = await minilm.embed(texts)
    for (const i of [0, 17, 39]) {
      const [alone] = await minilm.embed([texts[i]])
      expect(maxDifference(together[i], alone)).toBeLessThan(1e-3)
    }
  })
})

describe('embedding engine options', () => {
  test('initialize() refuses embeddings: the default engine generates', async () => {
    const refused = await failure(initialize({ modelPath: SMOLLM2, embeddings: true }))
    expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('Engine.load') })
  })

  test('pooling needs embeddings: true, and must be a known pooling', async () => {
    expect((await failure(Engine.load({ modelPath: SMOLLM2, pooling: 'mean' }))).code).toBe('INVALID_ARGUMENT')
    const bad = await failure(Engine.load({ modelPath: SMOLLM2, embeddings: true, pooling: 'max' as never }))
    expect(bad).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('pooling') })
  })

  test("a model without pooling of its own pools by 'mean'; a generation engine refuses embed", async () => {
    const embedder = await Engine.load({ modelPath: GEMMA3, ...FAST, contextSize: 128, embeddings: true })
    try {
      expect(embedder.info.pooling).toBe('mean')
      const [v] = await embedder.embed(['سلام'])
      expect(v).toHaveLength(embedder.info.embeddingSize)
    } finally {
      await embedder.unload()
    }
    const generator = await Engine.load({ modelPath: SMOLLM2, ...FAST, contextSize: 128 })
    try {
      expect(generator.info.pooling).toBeUndefined()
      expect((await failure(generator.embed(['x']))).code).toBe('INVALID_ARGUMENT')
    } finally {
      await generator.unload()
    }
  })
})

describe('reranking', () => {
  // The test models are not rerankers; the test-only fault `rank:1` lets one load with rank
  // pooling so the path runs end to end (its scores mean nothing). Without a classifier llama.cpp
  // reads only a batch's first score right, so the stand-in ranks one document per decode;
  // sharing decodes is the embedding path's, tested above.
  let ranker: Engine
  const DOCUMENTS = ['A cat is a small animal.', 'The stock market fell.', 'گربه حیوان کوچکی است.']

  beforeAll(async () => {
    ranker = await Engine.load({ modelPath: SMOLLM2, ...FAST, contextSize: 256, embeddings: true, pooling: 'rank', __faults: 'rank:1' } as never)
  })

  afterAll(async () => {
    await ranker.unload()
  })

  test('one finite score per document, in input order', async () => {
    expect(ranker.info.pooling).toBe('rank')
    const scores = await ranker.rank('What is a cat?', DOCUMENTS)
    expect(scores).toHaveLength(DOCUMENTS.length)
    expect(scores.promptTokens).toBeGreaterThan(DOCUMENTS.length)
    scores.forEach((s) => expect(Number.isFinite(s)).toBe(true))
    for (let i = 0; i < DOCUMENTS.length; i++) {
      const [alone] = await ranker.rank('What is a cat?', [DOCUMENTS[i]])
      expect(Math.abs(alone - scores[i])).toBeLessThan(1e-2 * Math.max(1, Math.abs(alone)))
    }
    const reversed = await ranker.rank('What is a cat?', [...DOCUMENTS].reverse())
    reversed.reverse().forEach((s, i) => expect(Math.abs(s - scores[i])).toBeLessThan(1e-2 * Math.max(1, Math.abs(s))))
  })

  test('misuse is INVALID_ARGUMENT and the reranker keeps serving', async () => {
    expect((await failure(ranker.rank('q', []))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(ranker.rank(7 as unknown as string, ['d']))).code).toBe('INVALID_ARGUMENT')
    expect((await failure(ranker.embed(['text']))).code).toBe('INVALID_ARGUMENT')
    expect(await ranker.rank('q', ['d'])).toHaveLength(1)
  })

  test("a generation model is refused as a reranker at load", async () => {
    const refused = await failure(Engine.load({ modelPath: SMOLLM2, ...FAST, embeddings: true, pooling: 'rank' }))
    expect(refused).toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringContaining('reranker') })
  })
})
