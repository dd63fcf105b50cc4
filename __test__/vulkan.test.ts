// The GPU build: the portable addon's Vulkan backend, on Mesa's software Vulkan device
// (lavapipe), which any Linux machine can run. With gpuLayers the model's layers go to the
// device, the device is named in ModelInfo and health(), and greedy text is the CPU build's.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { Engine } from '../index'
import { SMOLLM2 } from './helpers'
import { releasePackages } from './release-packages'

// A reply whose every token wins by a wide margin: the GPU's and the CPU's float rounding
// differ, and a near tie (as in free prose) could flip a greedy token late in the reply.
const PROMPT = [{ role: 'user' as const, content: 'Count from 1 to 20, separated by commas.' }]
const GREEDY = { maxTokens: 24, temperature: 0 }

// Runs in a child process: that process loads the portable addon instead of the test build.
const CHILD = `
const { Engine } = require(${JSON.stringify(path.join(__dirname, '..', 'index.js'))})
;(async () => {
  // Debug logs: they say whether a thread pool was attached, and whether it sleeps when idle.
  const engine = await Engine.load({ modelPath: process.argv[1], threads: 2, contextSize: 512, gpuLayers: Number(process.argv[2]), logLevel: 'debug' })
  const reply = await engine.generate(${JSON.stringify(PROMPT)}, ${JSON.stringify(GREEDY)})
  const health = engine.health()
  console.log(JSON.stringify({ text: reply.text, gpuLayers: engine.info.gpuLayers, devices: engine.info.devices, healthDevices: health.devices }))
  await engine.unload()
})().catch((err) => { console.error(err.code, err.message); process.exit(1) })
`

function runPortable(gpuLayers: number) {
  const { addon } = releasePackages()
  // lavapipe alone: its driver file is the only one the Vulkan loader reads (a real GPU's
  // driver would otherwise be device 0), and, a CPU-type device, ggml uses it only when named.
  const icd = ['x86_64', 'aarch64'].map((a) => `/usr/share/vulkan/icd.d/lvp_icd.${a}.json`).find((f) => fs.existsSync(f))
  if (!icd) throw new Error("Mesa's lavapipe driver is not installed (Debian: mesa-vulkan-drivers)")
  const env = { ...process.env, NAPI_RS_NATIVE_LIBRARY_PATH: addon, VK_DRIVER_FILES: icd, VK_ICD_FILENAMES: icd, GGML_VK_VISIBLE_DEVICES: '0' }
  const r = spawnSync(process.execPath, ['-e', CHILD, SMOLLM2, String(gpuLayers)], { env, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 })
  if (r.status !== 0) throw new Error(`the portable addon failed (exit ${r.status}): ${r.stderr}`)
  const result = JSON.parse(r.stdout.trim().split('\n').pop()!) as { text: string; gpuLayers: number; devices: string[]; healthDevices: string[] }
  return { ...result, log: r.stderr }
}

describe('Vulkan build on lavapipe', () => {
  let cpuText: string

  beforeAll(async () => {
    // The CPU build's answer (the test addon this suite runs on).
    const engine = await Engine.load({ modelPath: SMOLLM2, threads: 2, contextSize: 512 })
    cpuText = (await engine.generate(PROMPT, GREEDY)).text
    await engine.unload()
  })

  test('gpuLayers offloads to the Vulkan device, named in ModelInfo and health(), with the CPU build greedy text', () => {
    const gpu = runPortable(99)
    expect(gpu.gpuLayers).toBeGreaterThan(0)
    expect(gpu.devices[0]).toMatch(/^Vulkan\d+: .*llvmpipe/)
    expect(gpu.healthDevices).toEqual(gpu.devices)
    expect(gpu.text).toBe(cpuText)
  })

  test('gpuLayers: 0 keeps the model on the CPU in the same build, with a persistent thread pool', () => {
    const cpu = runPortable(0)
    expect(cpu.log).toMatch(/attached a persistent thread pool.*sleeps_when_idle=true/)
    expect(cpu.gpuLayers).toBe(0)
    expect(cpu.devices).toHaveLength(1)
    expect(cpu.devices[0]).toMatch(/^CPU: /)
    expect(cpu.text).toBe(cpuText)
  })
})
