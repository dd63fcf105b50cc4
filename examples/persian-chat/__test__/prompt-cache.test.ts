// The service's prompt cache: with one slot, a returning conversation gets its saved state
// back (usage.prompt_tokens_details.cached_tokens), from memory or, with LLM_PROMPT_CACHE_DIR,
// from disk, also after a restart; /metrics shows it.
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import request from 'supertest'
import { type TestService, startTestService, testConfig } from './helpers'

function conversation(topic: string) {
  return [
    { role: 'user', content: `دربارهٔ ${topic} سه نکته بگو، لطفاً با جزئیات و مثال‌های ساده برای یک نوآموز.` },
    { role: 'assistant', content: `باشد. ${topic} موضوع جالبی است: از کارهای کوچک شروع کن، هر روز تمرین کن و آنچه یاد می‌گیری را بنویس.` },
    { role: 'user', content: `یک نکتهٔ دیگر دربارهٔ ${topic} بگو.` },
  ]
}

async function ask(service: TestService, topic: string) {
  const res = await request(service.app)
    .post('/v1/chat/completions')
    .send({ messages: conversation(topic), max_tokens: 8, temperature: 0 })
    .expect(200)
  return res.body.usage as { prompt_tokens: number; prompt_tokens_details: { cached_tokens: number } }
}

test('configuration: LLM_PROMPT_CACHE_MB / _DIR / _DISK_MB, unset means the engine default', () => {
  const unset = testConfig()
  expect(unset.promptCacheMb).toBeUndefined()
  expect(unset.promptCacheDir).toBeUndefined()
  const set = testConfig({ LLM_PROMPT_CACHE_MB: '0', LLM_PROMPT_CACHE_DIR: 'cache', LLM_PROMPT_CACHE_DISK_MB: '512' })
  expect(set.promptCacheMb).toBe(0)
  expect(set.promptCacheDir).toBe(path.resolve('cache'))
  expect(set.promptCacheDiskMb).toBe(512)
  expect(() => testConfig({ LLM_PROMPT_CACHE_MB: '-1' })).toThrow(/LLM_PROMPT_CACHE_MB/)
  expect(() => testConfig({ LLM_PROMPT_CACHE_DISK_MB: 'lots' })).toThrow(/LLM_PROMPT_CACHE_DISK_MB/)
})

test('a returning conversation restores its state, from memory and from disk after a restart', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'persian-chat-cache-'))
  let service = await startTestService({ LLM_PARALLEL: '1', LLM_PROMPT_CACHE_DIR: dir })
  try {
    const first = await ask(service, 'باغبانی')
    await ask(service, 'ستاره‌شناسی')
    const back = await ask(service, 'باغبانی')
    expect(back.prompt_tokens).toBe(first.prompt_tokens)
    expect(back.prompt_tokens_details.cached_tokens).toBe(back.prompt_tokens - 1)
    const metrics = await request(service.app).get('/metrics').expect(200)
    expect(metrics.text).toMatch(/^llm_prompt_cache_hits_total 1$/m)
  } finally {
    await service.close()
  }
  // The states the first process held were written to the folder when it stopped.
  expect(fs.readdirSync(dir).length).toBeGreaterThanOrEqual(2)
  service = await startTestService({ LLM_PARALLEL: '1', LLM_PROMPT_CACHE_DIR: dir })
  try {
    const afterRestart = await ask(service, 'ستاره‌شناسی')
    expect(afterRestart.prompt_tokens_details.cached_tokens).toBe(afterRestart.prompt_tokens - 1)
    const metrics = await request(service.app).get('/metrics').expect(200)
    expect(metrics.text).toMatch(/^llm_prompt_cache_disk_loads_total 1$/m)
  } finally {
    await service.close()
    fs.rmSync(dir, { recursive: true, force: true })
  }
})
