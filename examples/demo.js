#!/usr/bin/env node
// `npm run demo`: streams a reply to a Persian greeting from Gemma 3 270M (fetched on first
// run) and prints the decode speed. Pass another model path or prompt to try your own:
//   npm run demo -- [modelPath] [prompt]
'use strict'

const path = require('node:path')
const llama = require('..')
const { ensureModel } = require('../scripts/fetch-model')

async function main() {
  const modelPath = process.argv[2] || ensureModel('gemma3')
  const prompt = process.argv[3] || 'سلام، چطوری؟'
  process.stderr.write(`loading ${path.basename(modelPath)} … `)
  const info = await llama.initialize({ modelPath, threads: Number(process.env.LLM_THREADS) || undefined })
  process.stderr.write(`done in ${info.loadMs.toFixed(0)} ms (${info.architecture}, chat template: ${info.chatTemplate} from ${info.chatTemplateSource})\n\n`)
  console.log(`> ${prompt}\n`)
  // An instruct model gets chat messages. A base model without a chat template (the Gemma 3
  // 270M test model) does not follow turns, so it gets the greeting as a dialogue to continue.
  const baseModel = info.chatTemplateSource === 'builtin-fallback'
  const input = baseModel ? `کاربر: ${prompt}\nدستیار:` : [{ role: 'user', content: prompt }]
  const options = { maxTokens: 128, temperature: 0.7, seed: 7, repeatPenalty: 1.15, stop: baseModel ? ['\nکاربر:'] : [] }
  if (baseModel) process.stderr.write('(base model without a chat template: the greeting is sent as a dialogue to continue)\n\n')
  let final
  for await (const chunk of llama.stream(input, options)) {
    if (chunk.done) final = chunk
    else process.stdout.write(chunk.text)
  }
  const t = final.timings
  console.log(`\n\n[${final.completionTokens} tokens, ${final.finishReason}] ${t.tokensPerSecond.toFixed(1)} tokens/s, first token after ${t.ttftMs.toFixed(0)} ms`)
  await llama.shutdown()
}

main().catch(async (err) => {
  console.error(`\ndemo failed: ${err.code || ''} ${err.message}`)
  await llama.shutdown()
  process.exit(1)
})
