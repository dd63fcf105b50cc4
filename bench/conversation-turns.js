#!/usr/bin/env node
// A long conversation's later turns through generate(): what each turn costs before its first
// prompt token is evaluated (timings.queueMs: rendering and tokenizing the whole history, and
// reaching a slot), next to the prompt evaluation itself (promptMs), as the history grows.
// With several addon builds (--addons a.node,b.node) they take turns, each round in a fresh
// process per build, so two builds compare in one run on a drifting machine: the median of
// each build's per-turn medians, and the ratio to the first build.
//   npm run bench:turns -- [--model smollm2] [--history 20] [--turns 12] [--rounds 3] [--addons A,B]
'use strict'

const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { ensureModel } = require('../scripts/fetch-model')

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? process.argv[i + 1] : fallback
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

// One process, one build: plays the conversation and prints one JSON line.
async function play(modelPath, historyTurns, turns) {
  const { Engine } = require('..')
  const engine = await Engine.load({ modelPath, threads: 2, parallel: 1, contextSize: 8192 })
  const messages = [{ role: 'system', content: 'You are a helpful assistant. Answer briefly and politely, in the language of the question.' }]
  for (let i = 0; i < historyTurns; i++) {
    messages.push({ role: 'user', content: `Question ${i}: tell me something about the river, the boats and the old mill near the bridge where people watch.` })
    messages.push({ role: 'assistant', content: `Answer ${i}: The river carried small boats past the old mill, and the people of the town watched them from the bridge.` })
  }
  const queueMs = []
  const promptMs = []
  let promptTokens = 0
  for (let turn = 0; turn < turns + 1; turn++) {
    messages.push({ role: 'user', content: `And then, part ${turn}?` })
    const g = await engine.generate(messages, { maxTokens: 8, temperature: 0 })
    messages.push({ role: 'assistant', content: g.text })
    // A user reads and types between turns: the engine is idle when the next one comes.
    await new Promise((resolve) => setTimeout(resolve, 100))
    if (turn === 0) continue // the first turn meets an empty prompt cache
    queueMs.push(g.timings.queueMs)
    promptMs.push(g.timings.promptMs)
    promptTokens = g.promptTokens
  }
  await engine.unload()
  console.log(JSON.stringify({ queueMs: median(queueMs), promptMs: median(promptMs), promptTokens }))
}

function main() {
  if (process.argv.includes('--child')) {
    return play(arg('model-path'), Number(arg('history')), Number(arg('turns')))
  }
  const modelPath = ensureModel(arg('model', 'smollm2'))
  const historyTurns = Number(arg('history', 20))
  const turns = Number(arg('turns', 12))
  if (!(turns >= 1) || !(historyTurns >= 0)) throw new Error('--turns must be at least 1 and --history at least 0')
  const rounds = Number(arg('rounds', 3))
  const addons = arg('addons', '').split(',').filter(Boolean)
  const inherited = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  const builds = addons.length ? addons.map((a) => path.resolve(a)) : [inherited ? path.resolve(inherited) : null]
  const results = builds.map(() => [])
  for (let round = 0; round < rounds; round++) {
    for (let k = 0; k < builds.length; k++) {
      const i = (k + round) % builds.length
      const env = { ...process.env }
      if (builds[i]) env.NAPI_RS_NATIVE_LIBRARY_PATH = builds[i]
      const childArgs = [__filename, '--child', '--model-path', modelPath, '--history', String(historyTurns), '--turns', String(turns)]
      const r = spawnSync(process.execPath, childArgs, { env, encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`a run failed:\n${r.stderr.slice(-2000)}`)
      results[i].push(JSON.parse(r.stdout.trim().split('\n').pop()))
    }
  }
  console.log(`\nLater turns of a conversation with ${historyTurns} earlier exchanges (up to ${results[0][0].promptTokens} prompt tokens), replies of at most 8 tokens, the engine idle between turns; medians over ${turns} turns, then over ${rounds} rounds\n`)
  console.log('| build | queueMs (render + tokenize + slot) | promptMs (evaluation of the new tokens) | queueMs ÷ first build |')
  console.log('|---|---|---|---|')
  const first = median(results[0].map((x) => x.queueMs))
  builds.forEach((b, i) => {
    const q = median(results[i].map((x) => x.queueMs))
    const p = median(results[i].map((x) => x.promptMs))
    console.log(`| ${b ? path.basename(b) : 'this checkout'} | ${q.toFixed(2)} | ${p.toFixed(1)} | ${(q / first).toFixed(2)}× |`)
  })
}

Promise.resolve(main()).catch((e) => {
  console.error(e)
  process.exit(1)
})
