// The chat page: sends each message to POST /api/chat with stream: true and renders the SSE
// reply as it arrives. With several models configured, a picker chooses the one that answers. States: idle, loading (waiting for the first piece), streaming, stopped
// (the stop button), error (a banner with a retry button). No framework, no external files.
'use strict'

const ERROR_TEXT = {
  rate_limit_exceeded: 'تعداد درخواست‌ها زیاد است. کمی صبر کنید و دوباره تلاش کنید.',
  queue_full: 'سرور در حال حاضر مشغول است. چند لحظه دیگر دوباره تلاش کنید.',
  too_many_concurrent_requests: 'درخواست‌های قبلی شما هنوز در جریان است. کمی صبر کنید و دوباره تلاش کنید.',
  timeout: 'پاسخ بیش از حد طول کشید. دوباره تلاش کنید.',
  model_not_loaded: 'مدل هنوز آماده نیست. کمی بعد دوباره تلاش کنید.',
  model_not_found: 'این مدل روی سرور وجود ندارد. مدل دیگری انتخاب کنید.',
  model_too_large: 'این مدل برای حافظهٔ سرور بزرگ است. مدل دیگری انتخاب کنید.',
  message_too_long: 'پیام بیش از حد طولانی است. آن را کوتاه‌تر کنید.',
  history_too_long: 'گفتگو بیش از حد طولانی شده است. صفحه را تازه کنید.',
  context_length_exceeded: 'گفتگو بیش از حد طولانی شده است. صفحه را تازه کنید.',
  invalid_api_key: 'کلید API لازم است یا نادرست است. آن را در کادر زیر وارد کنید.',
  request_too_large: 'پیام بیش از حد بزرگ است.',
  network: 'ارتباط با سرور برقرار نشد.',
}
const DEFAULT_ERROR_TEXT = 'خطایی رخ داد. دوباره تلاش کنید.'
/** Errors that sending the same message again cannot fix: the message goes back to the input. */
const NEEDS_EDIT = new Set(['message_too_long', 'request_too_large', 'invalid_request', 'invalid_json'])

const $ = (id) => document.getElementById(id)
const ui = {
  messages: $('messages'),
  empty: $('empty'),
  form: $('composer'),
  input: $('message-input'),
  send: $('send-button'),
  stop: $('stop-button'),
  error: $('error'),
  errorText: $('error-text'),
  errorDetail: $('error-detail'),
  retry: $('retry-button'),
  status: $('status'),
  apiKeyRow: $('api-key-row'),
  apiKey: $('api-key'),
  modelPickerRow: $('model-picker-row'),
  modelPicker: $('model-picker'),
}

/** Completed turns; the most recent of them go back as `history` with each new message. */
const history = []
// What is sent stays well inside the server's default limits (50 messages, a 64 kB body), so a
// long conversation keeps working: older turns are left out (the server also drops turns that
// no longer fit the model's context).
const HISTORY_MAX_MESSAGES = 20
const HISTORY_MAX_CHARS = 12000

function recentHistory() {
  let chars = 0
  let start = history.length
  // Whole turns (user + assistant), newest first.
  while (start >= 2 && history.length - (start - 2) <= HISTORY_MAX_MESSAGES) {
    const turn = history[start - 2].content.length + history[start - 1].content.length
    if (chars + turn > HISTORY_MAX_CHARS) break
    chars += turn
    start -= 2
  }
  return history.slice(start)
}
let inFlight = null // { controller, text }
let failedMessage = null // { text, bubble } of the last message that got an error

class ChatError extends Error {
  constructor(code, message) {
    super(message)
    this.code = code
  }
}

function scrollToEnd() {
  ui.messages.scrollTop = ui.messages.scrollHeight
}

function addBubble(role, text) {
  ui.empty.hidden = true
  const bubble = document.createElement('div')
  bubble.className = `message ${role}`
  bubble.dir = 'auto'
  bubble.textContent = text
  ui.messages.appendChild(bubble)
  scrollToEnd()
  return bubble
}

function showTyping(bubble) {
  bubble.classList.add('loading')
  bubble.setAttribute('aria-busy', 'true')
  bubble.innerHTML = '<span class="typing">در حال نوشتن<span>.</span><span>.</span><span>.</span></span>'
}

function addNote(bubble, text) {
  const note = document.createElement('span')
  note.className = 'note'
  note.textContent = text
  bubble.appendChild(note)
}

function setBusy(busy) {
  document.body.dataset.state = busy ? 'busy' : 'idle'
  ui.send.disabled = busy
  ui.stop.hidden = !busy
  ui.input.readOnly = busy
}

function showError(err) {
  ui.errorText.textContent = ERROR_TEXT[err.code] || DEFAULT_ERROR_TEXT
  ui.errorDetail.textContent = err.message && err.code !== 'network' ? `${err.code}: ${err.message}` : ''
  ui.retry.hidden = NEEDS_EDIT.has(err.code)
  ui.error.hidden = false
  if (err.code === 'invalid_api_key') {
    forgetApiKey()
    ui.apiKeyRow.hidden = false
  }
}

function hideError() {
  ui.error.hidden = true
}

// The key lives in sessionStorage: it is gone when the tab closes, and no other tab or later
// visit can read it. A 401 drops it, so a wrong or revoked key is asked for again.
const API_KEY_STORAGE = 'persian-chat-api-key'

function headers() {
  const h = { 'Content-Type': 'application/json' }
  const key = ui.apiKey.value.trim() || sessionStorage.getItem(API_KEY_STORAGE)
  if (key) h.Authorization = `Bearer ${key}`
  return h
}

function forgetApiKey() {
  sessionStorage.removeItem(API_KEY_STORAGE)
  ui.apiKey.value = ''
}

/** Parses an SSE body into { event, data } records as bytes arrive (UTF-8 safe across reads). */
async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader()
  let buffer = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffer += value
    let end
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const frame = buffer.slice(0, end)
      buffer = buffer.slice(end + 2)
      let event = 'message'
      const data = []
      for (const line of frame.split('\n')) {
        if (line.startsWith('event:')) event = line.slice(6).trim()
        else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''))
      }
      if (data.length) yield { event, data: JSON.parse(data.join('\n')) }
    }
  }
}

async function errorFromResponse(res) {
  try {
    const body = await res.json()
    if (body && body.error) return new ChatError(body.error.code || `http_${res.status}`, body.error.message || '')
  } catch (_) {
    // not JSON: fall through
  }
  return new ChatError(`http_${res.status}`, res.statusText)
}

async function send(text) {
  hideError()
  const userBubble = addBubble('user', text)
  const bubble = addBubble('assistant', '')
  showTyping(bubble)
  const controller = new AbortController()
  inFlight = { controller }
  setBusy(true)
  let reply = ''
  try {
    let res
    try {
      res = await fetch('/api/chat', {
        method: 'POST',
        headers: headers(),
        body: JSON.stringify({ message: text, history: recentHistory(), stream: true, ...chosenModel() }),
        signal: controller.signal,
      })
    } catch (err) {
      if (controller.signal.aborted) throw err
      throw new ChatError('network', String(err))
    }
    if (!res.ok) throw await errorFromResponse(res)
    for await (const { event, data } of readEvents(res.body)) {
      if (event === 'error') throw new ChatError(data.error.code, data.error.message)
      if (event === 'done') break
      if (bubble.classList.contains('loading')) {
        bubble.classList.remove('loading')
        bubble.removeAttribute('aria-busy')
        bubble.textContent = ''
      }
      reply += data.text
      bubble.textContent = reply
      scrollToEnd()
    }
    bubble.classList.remove('loading')
    bubble.textContent = reply
    bubble.dataset.done = 'true'
    history.push({ role: 'user', content: text }, { role: 'assistant', content: reply })
    failedMessage = null
    const key = ui.apiKey.value.trim()
    if (key) sessionStorage.setItem(API_KEY_STORAGE, key)
  } catch (err) {
    if (controller.signal.aborted) {
      // Stopped by the user: keep what arrived, and keep it in the conversation.
      bubble.classList.remove('loading')
      bubble.textContent = reply
      bubble.dataset.done = 'stopped'
      addNote(bubble, '⏹ متوقف شد')
      if (reply) history.push({ role: 'user', content: text }, { role: 'assistant', content: reply })
    } else {
      bubble.remove()
      const error = err instanceof ChatError ? err : new ChatError('network', String(err))
      if (NEEDS_EDIT.has(error.code)) {
        // Retrying would fail the same way: give the text back for editing instead.
        userBubble.remove()
        ui.input.value = text
      } else {
        userBubble.classList.add('failed')
        failedMessage = { text, bubble: userBubble }
      }
      showError(error)
    }
  } finally {
    inFlight = null
    setBusy(false)
    ui.input.focus()
    // The chosen model may have just loaded.
    if (!ui.modelPickerRow.hidden) refreshStatus()
  }
}

ui.form.addEventListener('submit', (event) => {
  event.preventDefault()
  const text = ui.input.value.trim()
  if (!text || inFlight) return
  ui.input.value = ''
  send(text)
})

ui.input.addEventListener('keydown', (event) => {
  if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
    event.preventDefault()
    ui.form.requestSubmit()
  }
})

ui.stop.addEventListener('click', () => {
  if (inFlight) inFlight.controller.abort()
})

ui.retry.addEventListener('click', () => {
  if (!failedMessage || inFlight) return
  const { text, bubble } = failedMessage
  failedMessage = null
  bubble.remove()
  send(text)
})

/** The picker's model, when there is a choice; the server's default otherwise. */
function chosenModel() {
  return ui.modelPickerRow.hidden || !ui.modelPicker.value ? {} : { model: ui.modelPicker.value }
}

/** Several models (/health lists them): one option each, the default chosen until the user picks. */
function showModels(models) {
  if (!models || models.length < 2) {
    ui.modelPickerRow.hidden = true
    return
  }
  const names = models.map((m) => m.name)
  const current = [...ui.modelPicker.options].map((o) => o.value)
  if (current.join('\n') !== names.join('\n')) {
    const chosen = ui.modelPicker.value
    ui.modelPicker.replaceChildren(...names.map((name) => new Option(name, name)))
    ui.modelPicker.value = names.includes(chosen) ? chosen : models.find((m) => m.default).name
  }
  ui.modelPickerRow.hidden = false
}

// Model states of a several-model server, as the page says them.
const MODEL_STATE_TEXT = {
  loaded: 'آماده',
  loading: 'در حال بارگذاری مدل…',
  configured: 'آماده (با اولین پیام بارگذاری می‌شود)',
  unloaded: 'آماده (با اولین پیام بارگذاری می‌شود)',
  failed: 'مدل در دسترس نیست',
}

async function refreshStatus() {
  try {
    const res = await fetch('/health')
    const body = await res.json()
    showModels(body.models)
    if (!ui.modelPickerRow.hidden) {
      const model = body.models.find((m) => m.name === ui.modelPicker.value)
      ui.status.dataset.state = model.state === 'failed' ? 'error' : model.state === 'loading' ? 'loading' : 'ok'
      ui.status.textContent = `${MODEL_STATE_TEXT[model.state]} · ${model.name}`
      return
    }
    ui.status.dataset.state = body.status === 'ok' ? 'ok' : body.status === 'loading' ? 'loading' : 'error'
    ui.status.textContent =
      body.status === 'ok' ? `آماده · ${body.model}` : body.status === 'loading' ? 'در حال بارگذاری مدل…' : 'مدل در دسترس نیست'
  } catch (_) {
    ui.status.dataset.state = 'error'
    ui.status.textContent = 'سرور در دسترس نیست'
  }
}

ui.modelPicker.addEventListener('change', refreshStatus)

refreshStatus()
setInterval(refreshStatus, 10000)
setBusy(false)
ui.input.focus()
