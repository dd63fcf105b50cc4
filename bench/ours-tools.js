// napi-llama's structured-reply measurement for bench/run.js --suites tools: decode tokens per
// second of one greedy chat reply on SmolLM2, as
//   plain:     the model's own template, plain text (the path every chat took before)
//   thinking:  the shipped thinking template, its reasoning read apart (the reply parsed by
//              llama.cpp's chat parser after every token)
//   toolcall:  the shipped tools template with toolChoice 'required' (a strict grammar, and the
//              parser, on every token)
// Tokens per second are the engine's own (completion tokens over generate time), so the prompt
// does not count.
'use strict'
const fs = require('node:fs')
const path = require('node:path')
const { Engine } = require('..')

const TEMPLATES = path.join(__dirname, '..', 'templates')
const TOOLS = [
  { name: 'get_weather', description: 'The weather in a city', parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] } },
]
const ASK = [{ role: 'user', content: 'Write a long story about the weather in Tehran, the sea and the mountains.' }]

async function main() {
  const [modelPath, threads, reps, mode, tokens] = process.argv.slice(2)
  const template = { plain: undefined, thinking: 'chatml-thinking.jinja', toolcall: 'chatml-tools.jinja' }[mode]
  const chatTemplate = template && fs.readFileSync(path.join(TEMPLATES, template), 'utf8')
  const engine = await Engine.load({ modelPath, threads: Number(threads), contextSize: 2048, chatTemplate })
  const options = { temperature: 0, maxTokens: Number(tokens), cachePrompt: false }
  if (mode === 'toolcall') Object.assign(options, { tools: TOOLS, toolChoice: 'required' })
  const tokensPerSecond = []
  for (let i = 0; i < Number(reps) + 1; i++) {
    const g = await engine.generate(ASK, options)
    if (i > 0) tokensPerSecond.push(g.timings.tokensPerSecond)
  }
  await engine.unload()
  console.log(JSON.stringify({ tokensPerSecond }))
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
