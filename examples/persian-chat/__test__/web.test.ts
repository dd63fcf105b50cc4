// The web page in a real headless Chromium (Debian's `chromium` driven by playwright-core):
// a Persian message gets a streamed reply, the stop button cancels, and a server error shows the
// error state whose retry button sends the message again; the API key lives in sessionStorage and
// a 401 drops it; a page reached through a rebinding name gets nothing.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { type Browser, type Page, chromium } from 'playwright-core'
import { PERSIAN, type TestService, startTestService, waitFor } from './helpers'

// eslint-disable-next-line @typescript-eslint/no-require-imports
const { ensureChromium } = require('../scripts/ensure-chromium') as { ensureChromium(): string }

let browser: Browser

beforeAll(async () => {
  browser = await chromium.launch({
    executablePath: ensureChromium(),
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-dev-shm-usage',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-extensions',
      '--disable-sync',
      '--no-first-run',
      '--mute-audio',
      // A name that resolves to loopback, as a rebinding attacker's domain would.
      '--host-resolver-rules=MAP rebind.example 127.0.0.1',
    ],
  })
})

afterAll(async () => {
  await browser?.close()
})

async function openPage(service: TestService): Promise<Page> {
  const page = await browser.newPage()
  const pageErrors: string[] = []
  page.on('pageerror', (err) => pageErrors.push(err.message))
  page.on('requestfailed', (req) => {
    // Only same-origin requests exist; anything else would be a CDN or tracker.
    if (!req.url().startsWith(service.url)) pageErrors.push(`external request ${req.url()}`)
  })
  ;(page as Page & { errors: string[] }).errors = pageErrors
  await page.goto(service.url)
  await page.waitForSelector('#status[data-state="ok"]')
  return page
}

/** Records every text the latest assistant bubble shows, and whether it was in the loading state. */
async function watchAssistant(page: Page): Promise<void> {
  await page.evaluate(() => {
    const w = window as unknown as { seen: string[]; sawLoading: boolean; sawBusy: boolean }
    w.seen = []
    w.sawLoading = false
    w.sawBusy = false
    new MutationObserver(() => {
      if (document.body.dataset.state === 'busy') w.sawBusy = true
      const bubbles = document.querySelectorAll('.message.assistant')
      const last = bubbles[bubbles.length - 1]
      if (!last) return
      if (last.classList.contains('loading')) w.sawLoading = true
      else if (last.textContent && w.seen[w.seen.length - 1] !== last.textContent) w.seen.push(last.textContent)
    }).observe(document.body, { subtree: true, childList: true, characterData: true, attributes: true })
  })
}

describe('chatting', () => {
  let service: TestService
  let page: Page

  beforeAll(async () => {
    service = await startTestService({ LLM_MAX_TOKENS: '40' })
    page = await openPage(service)
  })
  afterAll(async () => {
    await page.close()
    await service.close()
  })

  test('the page is right-to-left Persian', async () => {
    expect(await page.evaluate(() => getComputedStyle(document.documentElement).direction)).toBe('rtl')
    expect(await page.getAttribute('html', 'lang')).toBe('fa')
    expect(await page.textContent('h1')).toMatch(PERSIAN)
    // One model: nothing to choose.
    expect(await page.isHidden('#model-picker-row')).toBe(true)
  })

  test('a Persian message gets a streamed Persian reply', async () => {
    await watchAssistant(page)
    await page.fill('#message-input', 'سلام! لطفاً دربارهٔ شیراز بگو.')
    await page.click('#send-button')
    const bubble = page.locator('.message.assistant[data-done="true"]')
    await bubble.waitFor({ timeout: 60_000 })
    const reply = (await bubble.textContent()) ?? ''
    expect(reply).toMatch(PERSIAN)
    expect(reply).not.toContain('\uFFFD')
    const { seen, sawLoading, sawBusy } = await page.evaluate(() => {
      const w = window as unknown as { seen: string[]; sawLoading: boolean; sawBusy: boolean }
      return { seen: w.seen, sawLoading: w.sawLoading, sawBusy: w.sawBusy }
    })
    expect(sawLoading).toBe(true) // the typing indicator showed before the first piece
    expect(sawBusy).toBe(true)
    expect(seen.length).toBeGreaterThan(2) // the reply grew piece by piece
    for (let i = 1; i < seen.length; i++) expect(seen[i].startsWith(seen[i - 1])).toBe(true)
    expect(seen[seen.length - 1]).toBe(reply)
    expect(await page.textContent('.message.user')).toBe('سلام! لطفاً دربارهٔ شیراز بگو.')
    expect(await page.isEnabled('#send-button')).toBe(true)
    expect(await page.isHidden('#stop-button')).toBe(true)
    expect(await page.isHidden('#error')).toBe(true)
  })

  test('the second message carries the history (Enter sends)', async () => {
    const before = service.llm.metrics()!.promptTokensTotal
    await page.fill('#message-input', 'ممنون!')
    await page.press('#message-input', 'Enter')
    await page.locator('.message.assistant[data-done="true"]').nth(1).waitFor({ timeout: 60_000 })
    expect(await page.locator('.message.user').count()).toBe(2)
    // The prompt held the first exchange too.
    expect(service.llm.metrics()!.promptTokensTotal - before).toBeGreaterThan(40)
    expect((page as Page & { errors: string[] }).errors).toEqual([])
  })

  test('a long conversation sends only its recent whole turns (within the server limits)', async () => {
    const sent = await page.evaluate(() => {
      const w = window as unknown as { history: { role: string; content: string }[]; recentHistory(): { role: string; content: string }[] }
      // The page's script is a classic script: its top-level names are reachable here.
      const history = (0, eval)('history') as typeof w.history
      const recentHistory = (0, eval)('recentHistory') as typeof w.recentHistory
      const saved = history.splice(0)
      for (let i = 0; i < 40; i++) history.push({ role: 'user', content: `پرسش ${i}` }, { role: 'assistant', content: 'پاسخ '.repeat(i === 39 ? 10 : 300) })
      const recent = recentHistory()
      history.splice(0, history.length, ...saved)
      return { count: recent.length, chars: recent.reduce((n, m) => n + m.content.length, 0), first: recent[0], last: recent[recent.length - 1] }
    })
    expect(sent.count).toBeGreaterThan(0)
    expect(sent.count).toBeLessThanOrEqual(20)
    expect(sent.count % 2).toBe(0)
    expect(sent.chars).toBeLessThanOrEqual(12000)
    expect(sent.first.role).toBe('user')
    expect(sent.last.content).toBe('پاسخ '.repeat(10))
  })
})

describe('stop, errors and retry', () => {
  let service: TestService
  let page: Page

  beforeAll(async () => {
    // One slot and no queue, so a busy slot makes the server answer 429; a long cap, so stop matters.
    // Every decode step takes 20 ms more (test-only fault), so a 400-token reply holds the only
    // slot for seconds however fast the machine is: long enough for the page to find it taken.
    service = await startTestService({ LLM_MAX_TOKENS: '400', LLM_PARALLEL: '1', LLM_MAX_QUEUE: '0', MAX_MESSAGE_CHARS: '200', NAPI_LLAMA_FAULTS: 'step:20' })
    page = await openPage(service)
  })
  afterAll(async () => {
    await page.close()
    await service.close()
  })

  test('the stop button cancels the reply and keeps what arrived', async () => {
    const aborted = service.llm.metrics()!.requestsAborted
    await page.fill('#message-input', 'یک داستان خیلی بلند دربارهٔ دریا بنویس.')
    await page.click('#send-button')
    await page.waitForFunction(() => {
      const b = document.querySelector('.message.assistant')
      return b && !b.classList.contains('loading') && (b.textContent ?? '').length > 0
    })
    expect(await page.isVisible('#stop-button')).toBe(true)
    await page.click('#stop-button')
    await page.locator('.message.assistant[data-done="stopped"]').waitFor()
    expect(await page.textContent('.message.assistant .note')).toContain('متوقف شد')
    await waitFor(() => service.llm.metrics()!.requestsAborted === aborted + 1, 10_000, 'the server-side abort')
    await waitFor(() => service.llm.metrics()!.requestsActive === 0, 10_000, 'the slot to be freed')
    expect(await page.isEnabled('#send-button')).toBe(true)
  })

  test('a server error shows the error state, and retry sends the message again', async () => {
    // Occupy the only slot from outside the page.
    const occupier = new AbortController()
    const busy = fetch(`${service.url}/api/chat`, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ message: 'یک داستان خیلی بلند بنویس.', stream: true }),
      signal: occupier.signal,
    }).then(
      // Read the reply until the abort: cancelling the body would disconnect, and the server
      // would free the slot at once.
      async (r) => {
        const reader = r.body!.getReader()
        while (!(await reader.read()).done) {}
      },
    ).catch(() => undefined)
    await waitFor(() => service.llm.metrics()!.requestsActive === 1, 10_000, 'the slot to be taken')

    await page.fill('#message-input', 'سلام دوباره')
    await page.click('#send-button')
    await page.locator('#error').waitFor({ state: 'visible' })
    expect(await page.textContent('#error-text')).toContain('سرور در حال حاضر مشغول است')
    expect(await page.textContent('#error-detail')).toContain('queue_full')
    expect(await page.locator('.message.user.failed').count()).toBe(1)
    expect(await page.isEnabled('#send-button')).toBe(true)

    occupier.abort()
    await busy
    await waitFor(() => service.llm.metrics()!.requestsActive === 0, 10_000, 'the slot to be freed')

    await page.click('#retry-button')
    await page.locator('#error').waitFor({ state: 'hidden' })
    expect(await page.locator('.message.user.failed').count()).toBe(0)
    // The retried message streams a reply; stop it rather than wait for 400 tokens.
    await page.waitForFunction(() => {
      const all = document.querySelectorAll('.message.assistant')
      const b = all[all.length - 1]
      return b && !b.classList.contains('loading') && (b.textContent ?? '').length > 0
    })
    await page.click('#stop-button')
    await page.locator('.message.assistant[data-done="stopped"]').nth(1).waitFor()
    expect(await page.locator('.message.user').last().textContent()).toBe('سلام دوباره')
  })

  test('a validation error (message too long) shows the error state too', async () => {
    await page.fill('#message-input', 'خیلی '.repeat(60))
    await page.click('#send-button')
    await page.locator('#error').waitFor({ state: 'visible' })
    expect(await page.textContent('#error-text')).toContain('پیام بیش از حد طولانی است')
    // Sending it again would fail the same way: no retry, the text is back in the input to edit.
    expect(await page.isHidden('#retry-button')).toBe(true)
    expect(await page.inputValue('#message-input')).toBe('خیلی '.repeat(60).trim())
    expect((page as Page & { errors: string[] }).errors).toEqual([])
  })
})

describe('API key and DNS rebinding', () => {
  let service: TestService
  let page: Page

  beforeAll(async () => {
    service = await startTestService({ LLM_MAX_TOKENS: '8', API_KEY: 'page-key-123' })
    page = await openPage(service)
  })
  afterAll(async () => {
    await page.close()
    await service.close()
  })

  const storedKeys = () =>
    page.evaluate(() => ({ session: sessionStorage.getItem('persian-chat-api-key'), local: localStorage.getItem('persian-chat-api-key') }))

  test('a 401 asks for the key; it is kept in sessionStorage only', async () => {
    await page.fill('#message-input', 'سلام')
    await page.click('#send-button')
    await page.locator('#error').waitFor({ state: 'visible' })
    expect(await page.textContent('#error-detail')).toContain('invalid_api_key')
    expect(await page.isVisible('#api-key')).toBe(true)

    await page.fill('#api-key', 'page-key-123')
    await page.click('#retry-button')
    await page.locator('.message.assistant[data-done="true"]').waitFor({ timeout: 60_000 })
    expect(await storedKeys()).toEqual({ session: 'page-key-123', local: null })
  })

  test('a stored key that the server refuses is dropped', async () => {
    await page.evaluate(() => sessionStorage.setItem('persian-chat-api-key', 'revoked-key'))
    await page.fill('#api-key', '')
    await page.fill('#message-input', 'سلام دوباره')
    await page.click('#send-button')
    await page.locator('#error').waitFor({ state: 'visible' })
    expect(await page.textContent('#error-detail')).toContain('invalid_api_key')
    expect(await storedKeys()).toEqual({ session: null, local: null })
    expect((page as Page & { errors: string[] }).errors).toEqual([])
  })

  test('the page reached through a name that rebinds to 127.0.0.1 is refused, and so are its API calls', async () => {
    const port = new URL(service.url).port
    const rebound = await browser.newPage()
    try {
      const res = await rebound.goto(`http://rebind.example:${port}/`)
      expect(res!.status()).toBe(403)
      expect(await rebound.locator('#message-input').count()).toBe(0)
      // Script on that origin calls the API as same-origin: the Host check answers 403 there too.
      const status = await rebound.evaluate(async () => (await fetch('/v1/models', { headers: { Authorization: 'Bearer page-key-123' } })).status)
      expect(status).toBe(403)
    } finally {
      await rebound.close()
    }
  })
})

describe('model picker (several models in LLM_MODELS_FILE)', () => {
  let service: TestService
  let page: Page

  beforeAll(async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'persian-chat-web-models-'))
    const file = path.join(dir, 'models.json')
    fs.writeFileSync(file, JSON.stringify({ models: [{ name: 'smollm2', path: 'smollm2' }, { name: 'gemma3', path: 'gemma3', default: true }] }))
    service = await startTestService({ LLM_MODEL_PATH: '', LLM_MODELS_FILE: file, LLM_MAX_TOKENS: '24' })
    page = await openPage(service)
  })
  afterAll(async () => {
    await page.close()
    await service.close()
  })

  test('lists the models with the default chosen; the chosen model answers and the status follows it', async () => {
    expect(await page.isVisible('#model-picker')).toBe(true)
    expect(await page.$$eval('#model-picker option', (options) => options.map((o) => (o as HTMLOptionElement).value))).toEqual(['smollm2', 'gemma3'])
    expect(await page.inputValue('#model-picker')).toBe('gemma3')
    expect(await page.textContent('#status')).toContain('gemma3')

    await page.selectOption('#model-picker', 'smollm2')
    await page.waitForFunction(() => document.getElementById('status')!.textContent!.includes('smollm2'))
    const sent: unknown[] = []
    page.on('request', (req) => {
      if (req.url().endsWith('/api/chat')) sent.push(req.postDataJSON())
    })
    await page.fill('#message-input', 'سلام!')
    await page.click('#send-button')
    await page.locator('.message.assistant[data-done="true"]').waitFor({ timeout: 60_000 })
    expect(sent).toEqual([expect.objectContaining({ model: 'smollm2', message: 'سلام!' })])
    const states = Object.fromEntries(service.llm.registry!.statuses().map((m) => [m.name, m.state]))
    expect(states).toEqual({ smollm2: 'loaded', gemma3: 'configured' })
    await page.waitForFunction(() => document.getElementById('status')!.textContent!.startsWith('آماده · smollm2'))
    expect((page as Page & { errors: string[] }).errors).toEqual([])
  })
})
