#!/usr/bin/env node
// Where a streamed token's CPU time goes, per thread, in the persian-chat service and in
// llama-server: each is started fresh, warmed up, then serves REQUESTS streamed chat completions
// (STREAMS at a time) from this process, while the kernel's per-thread CPU counters
// (/proc/PID/task/TID/stat) are read before and after. Threads that ended in between (ggml's
// per-decode workers when no thread pool is attached) are the process total minus the live
// threads. Also the client's own CPU, the voluntary and involuntary context switches, and the
// wall time. Printed as CPU milliseconds per generated token, per thread group.
//   npm run bench:threads -- [--model smollm2] [--streams 1] [--requests 8] [--tokens 96] [--threads 2]
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { EventSourceParserStream } = require('eventsource-parser/stream')
const servers = require('./servers')
const { chatMessages } = require('./chat-messages')
const { ensureModel } = require('../scripts/fetch-model')

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}

const modelName = arg('model', 'smollm2')
const streams = Number(arg('streams', 1))
const requests = Number(arg('requests', 8))
const tokens = Number(arg('tokens', 96))
const threads = Number(arg('threads', 2))
const targets = arg('targets', 'service,llama-server').split(',')
const TICK_MS = 1000 / 100 // USER_HZ on Linux

/** utime + stime (ms), and context switches, of a /proc stat/status pair. */
function readStat(dir) {
  const stat = fs.readFileSync(path.join(dir, 'stat'), 'utf8')
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  const status = fs.readFileSync(path.join(dir, 'status'), 'utf8')
  const num = (key) => Number((status.match(new RegExp(`^${key}:\\s+(\\d+)`, 'm')) || [])[1] || 0)
  return {
    cpuMs: (Number(fields[11]) + Number(fields[12])) * TICK_MS,
    voluntary: num('voluntary_ctxt_switches'),
    involuntary: num('nonvoluntary_ctxt_switches'),
  }
}

/** The process's total and each live thread's counters, by "name/tid". */
function snapshot(pid) {
  const tasks = {}
  for (const tid of fs.readdirSync(`/proc/${pid}/task`)) {
    try {
      const dir = `/proc/${pid}/task/${tid}`
      const name = fs.readFileSync(path.join(dir, 'comm'), 'utf8').trim()
      tasks[`${tid === String(pid) ? 'main' : name}/${tid}`] = readStat(dir)
    } catch {} // ended while we read
  }
  return { total: readStat(`/proc/${pid}`), tasks }
}

async function oneStream(url, prompt) {
  const res = await fetch(`${url}/v1/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ messages: chatMessages(prompt), max_tokens: tokens, temperature: 0, stream: true, stream_options: { include_usage: true } }),
  })
  if (!res.ok || !res.body) throw new Error(`${url} answered ${res.status}`)
  let count = 0
  const events = res.body.pipeThrough(new TextDecoderStream()).pipeThrough(new EventSourceParserStream())
  for await (const event of events) {
    if (event.data === '[DONE]') break
    const chunk = JSON.parse(event.data)
    if (chunk.usage) count = chunk.usage.completion_tokens
  }
  return count
}

async function drive(url) {
  const prompts = Array.from({ length: streams }, (_, i) => `Continue this story in a few paragraphs (${i + 1}): Once upon a time, in a small village by the sea, there lived`)
  let total = 0
  for (let done = 0; done < requests; done += streams) {
    const counts = await Promise.all(prompts.map((p) => oneStream(url, p)))
    total += counts.reduce((a, b) => a + b, 0)
  }
  return total
}

/** Groups a thread's label into what it is. */
function group(label) {
  const name = label.split('/')[0]
  if (name === 'main') return 'main thread (Node event loop, or llama-server main)'
  if (name.startsWith('napi-llama-inf')) return 'inference thread (decode + sampling)'
  if (name.startsWith('napi-llama-')) return 'napi-llama helper threads'
  if (name.startsWith('llama-server')) return 'llama-server threads'
  return `other threads (${name})`
}

async function measure(target, modelPath) {
  const config = { modelPath, threads, parallel: Math.max(streams, 1), contextSize: 1024, maxTokens: tokens }
  const server =
    target === 'service'
      ? await servers.startService(servers.buildService(), config)
      : await servers.startLlamaServer(require('../scripts/llama-server').ensureLlamaServer().server, {
          ...config,
          extraArgs: modelName === 'gemma3' ? ['--no-jinja', '--chat-template', 'gemma'] : [],
        })
  try {
    await drive(server.url) // warm-up
    const pid = server.child.pid
    const before = snapshot(pid)
    const clientBefore = process.cpuUsage()
    const start = performance.now()
    const generated = await drive(server.url)
    const wallMs = performance.now() - start
    const client = process.cpuUsage(clientBefore)
    const after = snapshot(pid)
    const groups = {}
    let live = 0
    for (const [label, a] of Object.entries(after.tasks)) {
      const b = before.tasks[label] || { cpuMs: 0, voluntary: 0, involuntary: 0 }
      const g = (groups[group(label)] ||= { cpuMs: 0, voluntary: 0, involuntary: 0 })
      g.cpuMs += a.cpuMs - b.cpuMs
      g.voluntary += a.voluntary - b.voluntary
      g.involuntary += a.involuntary - b.involuntary
      live += a.cpuMs - b.cpuMs
    }
    const totalMs = after.total.cpuMs - before.total.cpuMs
    groups['threads that ended (per-decode ggml workers)'] = { cpuMs: Math.max(0, totalMs - live), voluntary: NaN, involuntary: NaN }
    return { target, generated, wallMs, totalMs, clientMs: (client.user + client.system) / 1000, groups }
  } finally {
    await server.stop()
  }
}

async function main() {
  const modelPath = ensureModel(modelName)
  const results = []
  for (const target of targets) results.push(await measure(target, modelPath))
  console.log(`\nCPU per generated token: ${modelName}, ${streams} stream(s) at a time, ${requests} requests of ${tokens} tokens, ${threads} threads (kernel tick: ${TICK_MS} ms, so small groups are coarse)\n`)
  console.log('| server | thread group | CPU ms per token | voluntary / involuntary switches per token |')
  console.log('|---|---|---|---|')
  for (const r of results) {
    const per = (x) => (x / r.generated).toFixed(3)
    for (const [name, g] of Object.entries(r.groups)) {
      if (g.cpuMs === 0 && !(g.voluntary > 0)) continue
      const sw = Number.isNaN(g.voluntary) ? '–' : `${per(g.voluntary)} / ${per(g.involuntary)}`
      console.log(`| ${r.target} | ${name} | ${per(g.cpuMs)} | ${sw} |`)
    }
    console.log(`| ${r.target} | whole server | ${per(r.totalMs)} | |`)
    console.log(`| ${r.target} | the client (this process) | ${per(r.clientMs)} | |`)
    console.log(`| ${r.target} | wall time per token (tok/s) | ${per(r.wallMs)} (${((r.generated * 1000) / r.wallMs).toFixed(1)}) | |`)
  }
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
