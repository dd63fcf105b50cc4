// `npm run bench [-- --rounds 5 --tokens 64 --streams 1,4,8]`: what the HTTP service costs on
// top of the addon. Each round streams the same chats twice: straight from napi-llama in this
// process (the baseline), and through the running service's OpenAI SSE endpoint (a child
// process, the way clients see it). Prints medians and the service ÷ direct ratio.
import { spawn } from 'node:child_process'
import path from 'node:path'
import { Engine } from 'napi-llama'
import { loadConfig } from '../src/config'

interface Sample {
  tokensPerSecond: number
  ttftMs: number
}

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(name)
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback
}

const ROUNDS = Number(arg('--rounds', '5'))
const TOKENS = Number(arg('--tokens', '64'))
const STREAMS = arg('--streams', '1,4,8').split(',').map(Number)
const PARALLEL = Math.max(...STREAMS)
const QUESTIONS = ['یک داستان کوتاه دربارهٔ دریا بنویس.', 'دربارهٔ تاریخ اصفهان بگو.', 'یک شعر دربارهٔ باران بگو.', 'چرا آسمان آبی است؟']

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

function messages(i: number, round: number) {
  // A distinct user turn per stream and round, so neither side gets a whole-prompt cache hit.
  return [
    { role: 'system' as const, content: 'همیشه به فارسی پاسخ بده.' },
    { role: 'user' as const, content: `${QUESTIONS[i % QUESTIONS.length]} (${round}-${i})` },
  ]
}

/** `streams` concurrent chats straight from an engine of the addon, as the service loads one. */
async function direct(engine: Engine, streams: number, round: number): Promise<Sample> {
  const started = performance.now()
  const firsts: number[] = []
  let tokens = 0
  await Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      for await (const chunk of engine.stream(messages(i, round), { maxTokens: TOKENS, temperature: 0 })) {
        if (firsts[i] === undefined && !chunk.done && chunk.text) firsts[i] = performance.now() - started
        if (chunk.done) tokens += chunk.completionTokens
      }
    }),
  )
  return { tokensPerSecond: tokens / ((performance.now() - started) / 1000), ttftMs: median(firsts.filter(Boolean)) }
}

/** The same chats through POST /v1/chat/completions with stream: true. */
async function viaService(url: string, streams: number, round: number): Promise<Sample> {
  const started = performance.now()
  const firsts: number[] = []
  let tokens = 0
  await Promise.all(
    Array.from({ length: streams }, async (_, i) => {
      const res = await fetch(`${url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify({ messages: messages(i, round), max_tokens: TOKENS, temperature: 0, stream: true, stream_options: { include_usage: true } }),
      })
      if (!res.ok || !res.body) throw new Error(`service answered ${res.status}: ${await res.text()}`)
      const decoder = new TextDecoder()
      let buffer = ''
      for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) {
        buffer += decoder.decode(bytes, { stream: true })
        let end
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const data = buffer.slice(6, end)
          buffer = buffer.slice(end + 2)
          if (data === '[DONE]') continue
          const chunk = JSON.parse(data)
          if (firsts[i] === undefined && chunk.choices[0]?.delta?.content) firsts[i] = performance.now() - started
          if (chunk.usage) tokens += chunk.usage.completion_tokens
        }
      }
    }),
  )
  return { tokensPerSecond: tokens / ((performance.now() - started) / 1000), ttftMs: median(firsts.filter(Boolean)) }
}

async function startService(env: Record<string, string>): Promise<{ url: string; stop(): void }> {
  const child = spawn(process.execPath, [path.join(__dirname, '..', 'src', 'server.js')], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  })
  let stderr = ''
  child.stderr.on('data', (d) => (stderr += d))
  const url = await new Promise<string>((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`service exited (${code}): ${stderr}`)))
    child.stderr.on('data', () => {
      const m = /listening on (http:\/\/[\d.]+:\d+)/.exec(stderr)
      if (m) resolve(m[1])
    })
  })
  const deadline = Date.now() + 120_000
  for (;;) {
    const health = await fetch(`${url}/health`)
    if (health.status === 200) break
    const body = await health.json()
    if (body.status === 'error' || Date.now() > deadline) throw new Error(`the service did not load its model: ${JSON.stringify(body)}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  return { url, stop: () => child.kill('SIGTERM') }
}

async function main(): Promise<void> {
  const config = loadConfig()
  const threads = config.threads
  // Both sides: same model, context, slots and threads. Only one of them works at a time (an
  // idle engine sleeps), so they never share the CPU.
  const service = await startService({
    PORT: '0',
    LLM_MODEL_PATH: config.modelPath,
    LLM_CONTEXT_SIZE: '1024',
    LLM_PARALLEL: String(PARALLEL),
    LLM_MAX_TOKENS: String(TOKENS),
    LLM_REPEAT_PENALTY: '1',
    ...(threads ? { LLM_THREADS: String(threads) } : {}),
    RATE_LIMIT_PER_MINUTE: '0',
    LOG_REQUESTS: 'false',
  })
  const engine = await Engine.load({ modelPath: config.modelPath, contextSize: 1024, parallel: PARALLEL, threads })
  const results = new Map<number, { direct: Sample[]; service: Sample[] }>()
  try {
    // Warm-up (first-use allocations on both sides).
    await direct(engine, 1, -1)
    await viaService(service.url, 1, -1)
    for (let round = 0; round < ROUNDS; round++) {
      for (const streams of STREAMS) {
        const r = results.get(streams) ?? { direct: [], service: [] }
        // Alternate which side goes first, so drift on a shared machine hits both alike.
        if (round % 2 === 0) {
          r.direct.push(await direct(engine, streams, round))
          r.service.push(await viaService(service.url, streams, round))
        } else {
          r.service.push(await viaService(service.url, streams, round))
          r.direct.push(await direct(engine, streams, round))
        }
        results.set(streams, r)
      }
    }
  } finally {
    await engine.unload()
    service.stop()
  }

  console.log(`\nmodel ${path.basename(config.modelPath)}, ${TOKENS} tokens per reply, medians of ${ROUNDS} rounds, greedy\n`)
  console.log('| streams | direct tok/s | service tok/s | service ÷ direct | direct TTFT | service TTFT |')
  console.log('|---|---|---|---|---|---|')
  for (const [streams, r] of results) {
    const d = median(r.direct.map((s) => s.tokensPerSecond))
    const s = median(r.service.map((x) => x.tokensPerSecond))
    console.log(
      `| ${streams} | ${d.toFixed(1)} | ${s.toFixed(1)} | ${(s / d).toFixed(2)}× | ${median(r.direct.map((x) => x.ttftMs)).toFixed(0)} ms | ${median(r.service.map((x) => x.ttftMs)).toFixed(0)} ms |`,
    )
  }
}

main().catch((err: Error) => {
  console.error(err.stack ?? err.message)
  process.exit(1)
})
