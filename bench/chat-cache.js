// The prompt-cache benchmark (bench/run.js): a 4-turn Persian chat on one engine. Each turn's
// time to first token is measured with prompt-cache reuse (the conversation as a user would
// have it) and, for the very same history, without (cachePrompt: false). Prints one JSON line.
//   node bench/chat-cache.js MODEL REPS THREADS
'use strict'
const { Engine } = require('..')

const SYSTEM =
  'تو یک دستیار هوشمند فارسی‌زبان هستی. به پرسش‌های کاربر با دقت، ادب و به زبان فارسی روان پاسخ بده. ' +
  'اگر پاسخ را نمی‌دانی، صادقانه بگو که نمی‌دانی. پاسخ‌ها را کوتاه و روشن نگه دار و از مثال‌های ساده استفاده کن. ' +
  'درباره‌ی تاریخ، جغرافیا، ادبیات و فرهنگ ایران با حوصله توضیح بده.'
const TURNS = [
  'سلام! می‌خواهم درباره‌ی شهر اصفهان بیشتر بدانم.',
  'مهم‌ترین بناهای تاریخی آن کدام‌اند؟',
  'بهترین فصل برای سفر به آنجا چه زمانی است؟',
  'چه غذاهای محلی را باید امتحان کنم؟',
]

async function ttft(engine, messages, options) {
  const g = await engine.generate(messages, { temperature: 0, maxTokens: 1, ...options })
  return { ttftMs: g.timings.ttftMs, promptTokens: g.promptTokens, cachedTokens: g.cachedTokens }
}

async function main() {
  const [modelPath, reps, threads] = process.argv.slice(2)
  const load = () => Engine.load({ modelPath, threads: Number(threads), contextSize: 2048, parallel: 4 })
  // The uncached measurements run on an engine of their own so they cannot seed the cache.
  const engine = await load()
  const fresh = await load()
  const turns = TURNS.map(() => ({ withCache: [], withoutCache: [], promptTokens: 0, cachedTokens: 0 }))
  for (let rep = 0; rep < Number(reps) + 1; rep++) {
    // A new conversation each repetition (a different first word), so no cache carries over.
    const messages = [{ role: 'system', content: `${SYSTEM} (${rep})` }]
    for (const [k, text] of TURNS.entries()) {
      messages.push({ role: 'user', content: text })
      const without = await ttft(fresh, messages, { cachePrompt: false })
      const reply = await engine.generate(messages, { temperature: 0, maxTokens: 48 })
      if (rep > 0) {
        turns[k].withCache.push(reply.timings.ttftMs)
        turns[k].withoutCache.push(without.ttftMs)
        turns[k].promptTokens = reply.promptTokens
        turns[k].cachedTokens = reply.cachedTokens
      }
      messages.push({ role: 'assistant', content: reply.text })
    }
  }
  await engine.unload()
  await fresh.unload()
  console.log(JSON.stringify({ turns }))
}
main().catch((e) => {
  console.error(e)
  process.exit(1)
})
