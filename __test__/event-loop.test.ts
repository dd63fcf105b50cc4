// responsiveEventLoop: true: the loading thread gets a short scheduler slice while an engine it
// loaded is up, and its own slice back after the last one shuts down. Linux 6.12+ only (older
// kernels and other systems ignore the request); the figures it buys are in `npm run bench`.
// The checks run in a child process: Jest runs every suite on one thread, and another suite's
// engine must not decide what this one sees.
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { Engine } from '../index'
import { SMOLLM2 } from './helpers'

const SHORT_SLICE_NS = 100_000

const [major, minor] = os.release().split('.').map(Number)
const showsSlice = (() => {
  try {
    return /^se\.slice/m.test(fs.readFileSync('/proc/thread-self/sched', 'utf8'))
  } catch {
    return false
  }
})()
const supported = os.platform() === 'linux' && (major > 6 || (major === 6 && minor >= 12)) && showsSlice

const LIGHT = { modelPath: SMOLLM2, threads: 1, contextSize: 256, parallel: 1 }

// Prints the main thread's slice after each step, as JSON.
const SCRIPT = `
const fs = require('node:fs')
const { Engine } = require(${JSON.stringify(path.join(__dirname, '..'))})
const slice = () => Number(fs.readFileSync('/proc/thread-self/sched', 'utf8').match(/^se\\.slice\\s*:\\s*(\\d+)/m)[1])
const light = ${JSON.stringify({ ...LIGHT, responsiveEventLoop: true })}
;(async () => {
  const seen = { before: slice() }
  const a = await Engine.load(light)
  seen.oneUp = slice()
  // Not inherited: a process started meanwhile has the default slice.
  seen.child = Number(require('node:child_process').execFileSync('cat', ['/proc/self/sched'], { encoding: 'utf8' }).match(/^se\\.slice\\s*:\\s*(\\d+)/m)[1])
  const b = await Engine.load(light)
  await a.unload()
  seen.secondStillUp = slice()
  await b.unload()
  seen.allDown = slice()
  const off = await Engine.load({ ...light, responsiveEventLoop: undefined })
  seen.byDefault = slice()
  await off.unload()
  await Engine.load({ ...light, modelPath: '/nonexistent/model.gguf' }).catch((e) => (seen.failedLoad = e.code))
  seen.afterFailedLoad = slice()
  console.log(JSON.stringify(seen))
})()
`

test('elsewhere (other systems, kernels before 6.12) the option is accepted and changes nothing', async () => {
  // Where the kernel has slices the test below checks them; here what holds everywhere.
  const engine = await Engine.load({ ...LIGHT, responsiveEventLoop: true })
  try {
    expect((await engine.generate('Hi', { maxTokens: 2, temperature: 0 })).completionTokens).toBeGreaterThan(0)
  } finally {
    await engine.unload()
  }
  expect(engine.health().status).toBe('unloaded')
})

;(supported ? test : test.skip)('held while any engine loaded from the thread is up; restored after; the default and failed loads leave it alone', () => {
  const r = spawnSync(process.execPath, ['-e', SCRIPT], { encoding: 'utf8', timeout: 60_000 })
  expect(r.status).toBe(0)
  const seen = JSON.parse(r.stdout.trim().split('\n').pop() as string)
  expect(seen.before).toBeGreaterThan(SHORT_SLICE_NS)
  expect(seen).toEqual({
    before: seen.before,
    oneUp: SHORT_SLICE_NS,
    child: seen.before,
    secondStillUp: SHORT_SLICE_NS,
    allDown: seen.before,
    byDefault: seen.before,
    failedLoad: 'MODEL_LOAD_FAILED',
    afterFailedLoad: seen.before,
  })
})

test('responsiveEventLoop must be a boolean', async () => {
  await expect(Engine.load({ ...LIGHT, responsiveEventLoop: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' })
})
