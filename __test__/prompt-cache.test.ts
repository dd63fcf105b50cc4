// The prompt cache beyond the slots: a conversation whose slot another conversation took gets
// its saved state restored (host memory), states that fall out of memory go to disk and
// survive a restart, and a restored prefix gives exactly the output that evaluating the whole
// prompt gives.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Engine } from '../index'
import type { ChatMessage, Generation } from '../index'
import { GEMMA3, SMOLLM2 } from './helpers'

const GREEDY = { temperature: 0, maxTokens: 24 }

/** A conversation long enough to be worth caching, different for every `topic`. */
function chat(topic: string, turns = 3): ChatMessage[] {
  const messages: ChatMessage[] = [{ role: 'system', content: `You are a patient teacher. Today's subject: ${topic}. Answer in short, plain sentences.` }]
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: `Question ${t + 1} about ${topic}: what is one thing a beginner should know, and why does it matter?` })
    messages.push({ role: 'assistant', content: `One thing about ${topic} (point ${t + 1}): start small, practise every day, and write down what you learn, because habits grow.` })
  }
  messages.push({ role: 'user', content: `Now summarise ${topic} in one sentence.` })
  return messages
}

/** Waits until the engine has saved `saves` states (it saves a finished reply once idle). */
async function untilSaved(engine: Engine, saves: number): Promise<void> {
  const deadline = Date.now() + 10_000
  while (engine.metrics().promptCacheSaves < saves && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
}

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'napi-llama-prompt-cache-'))
}

describe.each([
  ['SmolLM2', SMOLLM2],
  ['Gemma 3 (sliding-window layers)', GEMMA3],
])('%s: host-memory prompt cache', (_name, modelPath) => {
  let engine: Engine
  let reference: Engine
  beforeAll(async () => {
    // One slot: every other conversation takes it, so only the prompt cache can bring one back.
    engine = await Engine.load({ modelPath, threads: 1, contextSize: 1024, parallel: 1 })
    reference = await Engine.load({ modelPath, threads: 1, contextSize: 1024, parallel: 1, promptCacheBytes: 0 })
  })
  afterAll(async () => {
    await engine.unload()
    await reference.unload()
  })

  test('a returning conversation restores its state: the same greedy output as if it had kept its slot', async () => {
    const a = chat('gardening')
    const first = await engine.generate(a, GREEDY)
    // The slot still holds the conversation: the reference for what a restore must give.
    const kept = await engine.generate(a, GREEDY)
    expect(kept.cachedTokens).toBe(kept.promptTokens - 1)
    const other = await engine.generate(chat('astronomy'), GREEDY)
    // Only the chat template's opening and the shared start of the system prompt.
    expect(other.cachedTokens).toBeLessThan(other.promptTokens / 4)
    const before = engine.metrics()
    const again = await engine.generate(a, GREEDY)
    const after = engine.metrics()
    // Everything but the last prompt token, whose logits are needed, comes from the cache.
    expect(again.cachedTokens).toBe(again.promptTokens - 1)
    expect(again.text).toBe(kept.text)
    expect(after.promptCacheHits).toBe(before.promptCacheHits + 1)
    expect(after.promptCacheRestoredTokens).toBe(before.promptCacheRestoredTokens + again.cachedTokens)
    expect(after.promptCacheSaves).toBeGreaterThanOrEqual(1)
    expect(after.promptCacheEntries).toBeGreaterThanOrEqual(1)
    expect(after.promptCacheBytes).toBeGreaterThan(0)
    expect(after.promptCacheBytes).toBeLessThanOrEqual(after.promptCacheLimitBytes)

    // Against a full evaluation: llama.cpp's CPU kernels do not give bit-identical logits for
    // a prompt's last token evaluated alone and evaluated inside a batch, so a near tie late in
    // a reply may go the other way (llama-server says the same of its cache_prompt). The start
    // of the reply must agree.
    const full = await reference.generate(a, { ...GREEDY, cachePrompt: false })
    expect(full.cachedTokens).toBe(0)
    expect(full.text).toBe(first.text)
    expect(again.text.slice(0, 12)).toBe(full.text.slice(0, 12))
  })

  test('the next turn of a conversation continues from its restored state', async () => {
    const a = chat('bread baking')
    const reply = await engine.generate(a, GREEDY)
    await engine.generate(chat('sailing'), GREEDY)
    const next: ChatMessage[] = [...a, { role: 'assistant', content: reply.text }, { role: 'user', content: 'And one more tip?' }]
    const turn2 = await engine.generate(next, GREEDY)
    expect(turn2.cachedTokens).toBeGreaterThan(reply.promptTokens / 2)
    // The reference evaluates the same prefix, then the same rest: the same greedy output.
    await reference.generate(a, GREEDY)
    const full = await reference.generate(next, GREEDY)
    expect(full.cachedTokens).toBe(turn2.cachedTokens)
    expect(turn2.text).toBe(full.text)
    expect(engine.metrics().promptCacheSwaFallbacks).toBe(0)
  })

  test('a conversation longer than a sliding window continues from its restored state', async () => {
    // Gemma 3's sliding-window layers keep only the last positions of a saved state: enough to
    // go on from its end, which is what a chat's next turn does.
    const a = chat('pottery', 14)
    const reply = await engine.generate(a, GREEDY)
    expect(reply.promptTokens).toBeGreaterThan(600)
    await engine.generate(chat('cycling', 14), GREEDY)
    const fallbacks = engine.metrics().promptCacheSwaFallbacks
    const next: ChatMessage[] = [...a, { role: 'assistant', content: reply.text }, { role: 'user', content: 'And one more tip?' }]
    const turn2 = await engine.generate(next, GREEDY)
    expect(turn2.cachedTokens).toBeGreaterThan(reply.promptTokens)
    expect(engine.metrics().promptCacheSwaFallbacks).toBe(fallbacks)
    await reference.generate(a, GREEDY)
    const full = await reference.generate(next, GREEDY)
    expect(turn2.text).toBe(full.text)
  })

  test('a finished reply is saved while the engine is idle, before another conversation takes its slot', async () => {
    const before = engine.metrics().promptCacheSaves
    const a = chat('woodworking')
    await engine.generate(a, GREEDY)
    // No other request: only idle time can have saved it.
    await untilSaved(engine, before + 1)
    expect(engine.metrics().promptCacheSaves).toBe(before + 1)
    await engine.generate(chat('origami'), GREEDY)
    const again = await engine.generate(a, GREEDY)
    expect(again.cachedTokens).toBe(again.promptTokens - 1)
  })

  test('cachePrompt: false neither restores nor loses the saved states', async () => {
    const a = chat('chess')
    await engine.generate(a, GREEDY)
    await engine.generate(chat('knitting'), GREEDY)
    const uncached = await engine.generate(a, { ...GREEDY, cachePrompt: false })
    expect(uncached.cachedTokens).toBe(0)
    await engine.generate(chat('painting'), GREEDY)
    const restored = await engine.generate(a, GREEDY)
    expect(restored.cachedTokens).toBe(restored.promptTokens - 1)
  })
})

describe('memory bound', () => {
  test('least recently used states are evicted to stay within promptCacheBytes; 0 disables', async () => {
    const engine = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 1024, parallel: 1 })
    // The state of one finished conversation (saved while the engine is idle).
    await engine.generate(chat('rivers'), GREEDY)
    await untilSaved(engine, 1)
    const perState = engine.metrics().promptCacheBytes
    await engine.unload()
    expect(perState).toBeGreaterThan(0)

    // Room for about two states: the third pushes out the oldest.
    const bounded = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 1024, parallel: 1, promptCacheBytes: Math.floor(perState * 2.5) })
    for (const topic of ['owls', 'trains', 'tea', 'rain']) await bounded.generate(chat(topic), GREEDY)
    const m = bounded.metrics()
    expect(m.promptCacheBytes).toBeLessThanOrEqual(m.promptCacheLimitBytes)
    expect(m.promptCacheEvictions).toBeGreaterThanOrEqual(1)
    const oldest = await bounded.generate(chat('owls'), GREEDY)
    expect(oldest.cachedTokens).toBeLessThan(oldest.promptTokens / 4)
    const recent = await bounded.generate(chat('tea'), GREEDY)
    expect(recent.cachedTokens).toBe(recent.promptTokens - 1)
    await bounded.unload()

    const off = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 1024, parallel: 1, promptCacheBytes: 0 })
    await off.generate(chat('owls'), GREEDY)
    await off.generate(chat('trains'), GREEDY)
    const back = await off.generate(chat('owls'), GREEDY)
    expect(back.cachedTokens).toBeLessThan(back.promptTokens / 4)
    expect(off.metrics().promptCacheEntries).toBe(0)
    expect(off.metrics().promptCacheLimitBytes).toBe(0)
    await off.unload()
  })
})

describe('disk tier', () => {
  const load = (dir: string, extra: object = {}) =>
    // A memory cache too small for any state: every saved state spills to disk at once.
    Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 1024, parallel: 1, promptCacheBytes: 1, promptCacheDir: dir, ...extra })

  async function waitForDisk(engine: Engine, entries: number): Promise<void> {
    for (let i = 0; i < 200 && engine.metrics().promptCacheDiskEntries < entries; i++) await new Promise((r) => setTimeout(r, 25))
    expect(engine.metrics().promptCacheDiskEntries).toBeGreaterThanOrEqual(entries)
  }

  test('states that fall out of memory are restored from disk, also after a restart', async () => {
    const dir = tempDir()
    const a = chat('volcanoes')
    let first: Generation
    {
      const engine = await load(dir)
      first = await engine.generate(a, GREEDY)
      await engine.generate(chat('deserts'), GREEDY)
      await waitForDisk(engine, 1)
      const back = await engine.generate(a, GREEDY)
      expect(back.cachedTokens).toBe(back.promptTokens - 1)
      expect(back.text).toBe(first.text)
      const m = engine.metrics()
      expect(m.promptCacheDiskWrites).toBeGreaterThanOrEqual(1)
      expect(m.promptCacheDiskLoads).toBe(1)
      await engine.unload()
    }
    // A new engine (as after a restart) finds the states its predecessor left.
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.promptcache'))
    expect(files.length).toBeGreaterThanOrEqual(1)
    const engine = await load(dir)
    expect(engine.metrics().promptCacheDiskEntries).toBe(files.length)
    const afterRestart = await engine.generate(a, GREEDY)
    expect(afterRestart.cachedTokens).toBe(afterRestart.promptTokens - 1)
    expect(afterRestart.text).toBe(first.text)
    await engine.unload()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test("another model's files and damaged files are ignored, never loaded", async () => {
    const dir = tempDir()
    const a = chat('glaciers')
    {
      const engine = await load(dir)
      await engine.generate(a, GREEDY)
      await engine.generate(chat('meadows'), GREEDY)
      await engine.unload()
    }
    const files = fs.readdirSync(dir).filter((f) => f.endsWith('.promptcache'))
    expect(files.length).toBe(2)

    // Gemma 3 sees SmolLM2's files: skipped with a warning, left alone. (At unload it leaves
    // a file of its own, which SmolLM2 skips in turn.)
    const gemma = await Engine.load({ modelPath: GEMMA3, threads: 1, contextSize: 1024, parallel: 1, promptCacheDir: dir, logLevel: 'off' })
    expect(gemma.metrics().promptCacheDiskEntries).toBe(0)
    expect(gemma.metrics().promptCacheDiskRejected).toBe(2)
    const g = await gemma.generate(a, GREEDY)
    expect(g.cachedTokens).toBeLessThan(g.promptTokens / 4)
    await gemma.unload()
    expect(fs.readdirSync(dir).filter((f) => f.endsWith('.promptcache')).length).toBe(3)

    // Truncate one and damage the other: neither is loaded, and requests still work.
    const [one, two] = files.map((f) => path.join(dir, f))
    fs.truncateSync(one, Math.floor(fs.statSync(one).size / 2))
    const bytes = fs.readFileSync(two)
    bytes[bytes.length - 100] ^= 0xff
    fs.writeFileSync(two, bytes)
    const engine = await load(dir, { logLevel: 'off' })
    const m = engine.metrics()
    // Gemma's file and the truncated one are skipped; the damaged one's header is fine, its
    // checksum is what catches it when it is read.
    expect(m.promptCacheDiskEntries).toBe(1)
    expect(m.promptCacheDiskRejected).toBe(2)
    const r1 = await engine.generate(a, GREEDY)
    const r2 = await engine.generate(chat('meadows'), GREEDY)
    expect(r1.cachedTokens).toBeLessThan(r1.promptTokens / 4)
    expect(r2.cachedTokens).toBeLessThan(r2.promptTokens / 4)
    expect(engine.metrics().promptCacheDiskRejected).toBe(3)
    expect(engine.metrics().promptCacheDiskLoads).toBe(0)
    const after = await engine.generate('Hello', { maxTokens: 4 })
    expect(after.completionTokens).toBeGreaterThan(0)
    await engine.unload()
    fs.rmSync(dir, { recursive: true, force: true })
  })

  test('bad cache options are INVALID_ARGUMENT', async () => {
    for (const bad of [{ promptCacheBytes: -1 }, { promptCacheBytes: 1.5 }, { promptCacheDiskBytes: Number.NaN }, { promptCacheDir: 42 }]) {
      await expect(Engine.load({ modelPath: SMOLLM2, threads: 1, ...(bad as object) })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
    }
    const file = path.join(tempDir(), 'a-file')
    fs.writeFileSync(file, 'not a folder')
    await expect(Engine.load({ modelPath: SMOLLM2, threads: 1, promptCacheDir: file })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
  })
})
