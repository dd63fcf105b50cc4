// Starting points for threads, parallel and contextSize on this machine, from its cores and
// memory and the model's KV-cache bytes per token. They are estimates: `napi-llama bench`
// measures, and the engine refuses a cache that cannot fit before allocating it.
import * as fs from 'node:fs'
import * as os from 'node:os'
import { kvCacheBytes } from './gguf-facts'

export interface Machine {
  /** CPUs this process may run on (affinity and container limits included). */
  cores: number
  totalMemoryBytes: number
  /** Memory free now, lowered to a container's limit when there is one. */
  freeMemoryBytes: number
}

export interface Recommendation {
  threads: number
  parallel: number
  contextSize: number
  /** The KV cache those settings allocate; null when the model's cache is not per token. */
  kvCacheBytes: number | null
  /** Why the settings are lower than wished, when they are. */
  notes: string[]
}

/** The engine's own default context: min(trained context, this). */
const ENGINE_DEFAULT_CONTEXT = 4096
/** The engine's default number of slots, used when memory cannot guide the choice. */
const ENGINE_DEFAULT_PARALLEL = 4
/** Smallest context worth recommending, and the step contexts are rounded to (llama.cpp's cell padding). */
const CONTEXT_STEP = 256
/**
 * Slots per core: batching reads the weights once for every slot in a decode step, so
 * aggregate speed keeps growing past one slot per core (docs/benchmarks.md, concurrency), while
 * each stream slows down.
 */
const SLOTS_PER_CORE = 4
/** Beyond this, each of many streams crawls on a CPU whatever the memory. */
const MAX_PARALLEL = 32

/**
 * Physical cores, as the engine's own default counts them: llama.cpp's threads spin while they
 * wait for each other, so a second thread on one core's sibling slows both. Linux counts
 * distinct (package, core) pairs in /proc/cpuinfo; elsewhere, or in a VM that hides them, the
 * logical CPUs Node sees.
 */
function physicalCores(): number {
  const logical = typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length
  try {
    const cores = new Set<string>()
    for (const block of fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n\n')) {
      const pkg = /^physical id\s*:\s*(\d+)/m.exec(block)
      const core = /^core id\s*:\s*(\d+)/m.exec(block)
      if (pkg && core) cores.add(`${pkg[1]}:${core[1]}`)
    }
    return cores.size > 0 ? Math.min(cores.size, logical) : logical
  } catch {
    return logical
  }
}

export function thisMachine(): Machine {
  const free = os.freemem()
  // Node ≥ 19.6 (and 18.15) reads the cgroup limit; 0 means none.
  const constrained = typeof process.constrainedMemory === 'function' ? Number(process.constrainedMemory() ?? 0) : 0
  return {
    cores: physicalCores(),
    totalMemoryBytes: os.totalmem(),
    freeMemoryBytes: constrained > 0 ? Math.min(free, constrained) : free,
  }
}

export interface ModelNeeds {
  weightsBytes: number
  trainedContextLength: number | null
  kvBytesPerToken: number | null
}

export function recommend(model: ModelNeeds, machine: Machine): Recommendation {
  const notes: string[] = []
  const threads = Math.max(1, machine.cores)
  const maxParallel = Math.min(MAX_PARALLEL, SLOTS_PER_CORE * threads)
  let contextSize = Math.min(model.trainedContextLength ?? ENGINE_DEFAULT_CONTEXT, ENGINE_DEFAULT_CONTEXT)
  if (model.kvBytesPerToken === null) {
    return { threads, parallel: Math.min(ENGINE_DEFAULT_PARALLEL, maxParallel), contextSize, kvCacheBytes: null, notes }
  }
  // The weights are read into memory as they are used; half of what is left goes to the KV
  // cache, the rest stays for llama.cpp's compute buffers, the prompt cache and everything
  // else running here.
  const left = machine.freeMemoryBytes - model.weightsBytes
  if (left <= 0) notes.push('the weights alone take more than the free memory: the model will page from disk')
  const kvBudget = Math.max(0, left / 2)
  const perSlot = (context: number) => kvCacheBytes(model.kvBytesPerToken as number, context, 1)
  while (contextSize > CONTEXT_STEP && perSlot(contextSize) > kvBudget) {
    contextSize = Math.max(CONTEXT_STEP, Math.floor(contextSize / 2 / CONTEXT_STEP) * CONTEXT_STEP)
  }
  if (perSlot(contextSize) > kvBudget) notes.push('even one slot of the smallest context does not fit in half the free memory')
  const fitting = Math.floor(kvBudget / perSlot(contextSize))
  const parallel = Math.max(1, Math.min(maxParallel, fitting))
  return { threads, parallel, contextSize, kvCacheBytes: kvCacheBytes(model.kvBytesPerToken, contextSize, parallel), notes }
}
