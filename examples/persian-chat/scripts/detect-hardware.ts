// `npm run detect-hardware [-- --json]`: what this machine has for inference (cores, memory,
// SIMD, GPU) and the LLM_THREADS / LLM_PARALLEL / LLM_CONTEXT_SIZE to put in `.env`.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { spawnSync } from 'node:child_process'
import dotenv from 'dotenv'
import { loadConfig } from '../src/config'
import { kvBytesPerToken, readGgufMetadata } from './gguf'

const SIMD_FLAGS = [
  'sse4_2', 'avx', 'avx2', 'fma', 'f16c', 'avx_vnni',
  'avx512f', 'avx512bw', 'avx512vl', 'avx512_vnni', 'avx512vbmi', 'avx512_bf16',
  'amx_tile', 'amx_int8', 'amx_bf16',
  'asimd', 'asimddp', 'sve', 'sve2', 'i8mm',
]

interface Cpu {
  model: string
  logicalCores: number
  physicalCores: number
  /** CPUs this process may use under a cgroup quota (containers), if limited. */
  quotaCores: number | null
  simd: string[]
}

interface Gpu {
  vendor: string
  name: string
  memoryMiB: number | null
}

function readText(file: string): string | null {
  try {
    return fs.readFileSync(file, 'utf8')
  } catch {
    return null
  }
}

function detectCpu(): Cpu {
  const cpuinfo = readText('/proc/cpuinfo') ?? ''
  const logicalCores = os.availableParallelism ? os.availableParallelism() : os.cpus().length
  // A physical core is a distinct (physical id, core id) pair; hyperthreads share one.
  const cores = new Set<string>()
  for (const block of cpuinfo.split('\n\n')) {
    const physical = /^physical id\s*:\s*(\d+)/m.exec(block)
    const core = /^core id\s*:\s*(\d+)/m.exec(block)
    if (physical && core) cores.add(`${physical[1]}:${core[1]}`)
  }
  const flagsLine = /^(flags|Features)\s*:\s*(.*)$/m.exec(cpuinfo)
  const flags = new Set((flagsLine?.[2] ?? '').split(/\s+/))
  let quotaCores: number | null = null
  const cpuMax = readText('/sys/fs/cgroup/cpu.max')?.trim().split(/\s+/)
  if (cpuMax && cpuMax[0] !== 'max') quotaCores = Number(cpuMax[0]) / Number(cpuMax[1])
  return {
    model: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? os.cpus()[0]?.model ?? 'unknown',
    logicalCores,
    physicalCores: Math.min(cores.size || logicalCores, logicalCores),
    quotaCores,
    simd: SIMD_FLAGS.filter((f) => flags.has(f)),
  }
}

function detectMemory(): { totalBytes: number; availableBytes: number; cgroupLimitBytes: number | null } {
  const meminfo = readText('/proc/meminfo') ?? ''
  const available = /^MemAvailable:\s*(\d+) kB/m.exec(meminfo)
  const limit = readText('/sys/fs/cgroup/memory.max')?.trim()
  return {
    totalBytes: os.totalmem(),
    availableBytes: available ? Number(available[1]) * 1024 : os.freemem(),
    cgroupLimitBytes: limit && /^\d+$/.test(limit) ? Number(limit) : null,
  }
}

function detectGpus(): Gpu[] {
  const gpus: Gpu[] = []
  const smi = spawnSync('nvidia-smi', ['--query-gpu=name,memory.total', '--format=csv,noheader,nounits'], { encoding: 'utf8' })
  if (smi.status === 0) {
    for (const line of smi.stdout.trim().split('\n').filter(Boolean)) {
      const [name, memory] = line.split(',').map((s) => s.trim())
      gpus.push({ vendor: 'NVIDIA', name, memoryMiB: Number(memory) || null })
    }
    return gpus
  }
  // Without vendor tools: PCI display devices under /sys/class/drm.
  const vendors: Record<string, string> = { '0x10de': 'NVIDIA', '0x1002': 'AMD', '0x8086': 'Intel' }
  let cards: string[] = []
  try {
    cards = fs.readdirSync('/sys/class/drm').filter((d) => /^card\d+$/.test(d))
  } catch {
    return gpus
  }
  for (const card of cards) {
    const vendor = readText(path.join('/sys/class/drm', card, 'device', 'vendor'))?.trim()
    if (!vendor) continue
    const device = readText(path.join('/sys/class/drm', card, 'device', 'device'))?.trim() ?? ''
    gpus.push({ vendor: vendors[vendor] ?? vendor, name: `PCI device ${vendor}:${device}`, memoryMiB: null })
  }
  return gpus
}

const GiB = 1024 ** 3
const MiB = 1024 ** 2

interface Recommendation {
  LLM_THREADS: number
  LLM_PARALLEL: number
  LLM_CONTEXT_SIZE: number
  reasons: string[]
}

function recommend(cpu: Cpu, memory: ReturnType<typeof detectMemory>, modelPath: string): Recommendation {
  const reasons: string[] = []
  const usable = Math.max(1, Math.floor(Math.min(cpu.physicalCores, cpu.quotaCores ?? Infinity)))
  // llama.cpp is fastest with one thread per physical core; on bigger machines one core is left
  // for Node (HTTP, JSON, SSE), which otherwise competes with the spinning compute threads.
  const threads = usable >= 6 ? usable - 1 : usable
  reasons.push(`LLM_THREADS=${threads}: ${usable} usable physical core(s)${usable >= 6 ? ', one left for Node' : ''}`)

  // Batched decoding costs little per extra stream on CPU; more slots than ~2× cores only queue.
  let parallel = usable <= 2 ? 4 : Math.min(16, usable * 2)

  const memoryBudget = Math.min(memory.availableBytes, memory.cgroupLimitBytes ?? Infinity)
  let modelBytes = 0
  let perToken: number | null = null
  let trained = 0
  try {
    modelBytes = fs.statSync(modelPath).size
    const metadata = readGgufMetadata(modelPath)
    perToken = kvBytesPerToken(metadata)
    const arch = metadata.get('general.architecture')
    const ctx = metadata.get(`${String(arch)}.context_length`)
    trained = typeof ctx === 'number' || typeof ctx === 'bigint' ? Number(ctx) : 0
  } catch (err) {
    reasons.push(`model not readable (${(err as Error).message}); context sized without it`)
  }
  // Half of what is left after the weights goes to the KV cache; the rest stays for the OS and Node.
  const kvBudget = Math.max(0, (memoryBudget - modelBytes) / 2)
  let context = 4096
  if (perToken) {
    // Fewer slots before a shorter context: a chat needs ~2k tokens to be useful.
    while (parallel > 1 && kvBudget / (perToken * parallel) < 2048) parallel = Math.floor(parallel / 2)
    const fit = Math.floor(kvBudget / (perToken * parallel) / 256) * 256
    context = Math.max(512, Math.min(trained || 8192, 8192, fit))
    reasons.push(
      `LLM_CONTEXT_SIZE=${context}: KV cache ${(perToken / 1024).toFixed(0)} KiB/token × ${parallel} slots within half of the ` +
        `${(memoryBudget / GiB).toFixed(1)} GiB available after the ${(modelBytes / MiB).toFixed(0)} MiB model` +
        (trained ? ` (trained context ${trained})` : ''),
    )
  }
  reasons.push(`LLM_PARALLEL=${parallel}: requests decoded together in one batch per step`)
  return { LLM_THREADS: threads, LLM_PARALLEL: parallel, LLM_CONTEXT_SIZE: context, reasons }
}

function addonBuild(): string {
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const { describeBuild } = require('napi-llama/scripts/build-env') as { describeBuild(): string }
    return describeBuild()
  } catch {
    return 'unknown'
  }
}

function main(): void {
  dotenv.config({ path: path.join(process.cwd(), '.env'), quiet: true })
  const cpu = detectCpu()
  const memory = detectMemory()
  const gpus = detectGpus()
  let modelPath: string
  try {
    modelPath = loadConfig().modelPath
  } catch (err) {
    console.error(`configuration error: ${(err as Error).message}`)
    process.exit(2)
  }
  const rec = recommend(cpu, memory, modelPath)
  const report = { cpu, memory, gpus, addonBuild: addonBuild(), modelPath, recommended: rec }

  if (process.argv.includes('--json')) {
    console.log(JSON.stringify(report, null, 2))
    return
  }
  const gib = (n: number) => `${(n / GiB).toFixed(1)} GiB`
  console.log('Hardware')
  console.log(`  CPU:        ${cpu.model}`)
  console.log(`  Cores:      ${cpu.physicalCores} physical, ${cpu.logicalCores} logical${cpu.quotaCores ? `, cgroup quota ${cpu.quotaCores}` : ''}`)
  console.log(`  Memory:     ${gib(memory.totalBytes)} total, ${gib(memory.availableBytes)} available${memory.cgroupLimitBytes ? `, cgroup limit ${gib(memory.cgroupLimitBytes)}` : ''}`)
  console.log(`  SIMD:       ${cpu.simd.join(' ') || 'none detected'}`)
  console.log(`  GPU:        ${gpus.length ? gpus.map((g) => `${g.vendor} ${g.name}${g.memoryMiB ? ` (${g.memoryMiB} MiB)` : ''}`).join('; ') : 'none (CPU inference)'}`)
  console.log(`  napi-llama: ${report.addonBuild} (ggml build npm install picks for this CPU)`)
  console.log(`  Model:      ${modelPath}`)
  console.log('')
  console.log('Recommended .env')
  console.log(`  LLM_THREADS=${rec.LLM_THREADS}`)
  console.log(`  LLM_PARALLEL=${rec.LLM_PARALLEL}`)
  console.log(`  LLM_CONTEXT_SIZE=${rec.LLM_CONTEXT_SIZE}`)
  if (gpus.length) console.log('  LLM_GPU_LAYERS=0  # a GPU was found; offloading needs a GPU build of napi-llama')
  console.log('')
  for (const reason of rec.reasons) console.log(`  - ${reason}`)
}

main()
