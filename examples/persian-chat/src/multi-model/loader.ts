// How a model becomes an engine: the load options of a local GGUF (the service's LLM_* values,
// overridden by what a models-file entry sets), or a pool over the remote servers it is served by.
import path from 'node:path'
import { Engine, type InitializeOptions, type PoolMember } from 'napi-llama'
import type { Config } from '../config'
import type { ModelEngine } from './registry'
import type { ModelSpec } from './models-file'

type LoadOverrides = Partial<Pick<ModelSpec, 'contextSize' | 'parallel' | 'threads' | 'gpuLayers' | 'batchSize' | 'maxQueue' | 'useMmap' | 'chatTemplate' | 'promptCacheMb'>>

const mib = (n: number | undefined) => (n === undefined ? undefined : n * 1024 * 1024)

/** Engine.load options for `modelPath`: the service's settings, with a model's own where it has them. */
export function engineLoadOptions(config: Config, modelPath: string, own: LoadOverrides = {}, promptCacheDir = config.promptCacheDir): InitializeOptions {
  const options: InitializeOptions = {
    modelPath,
    contextSize: own.contextSize ?? config.contextSize,
    threads: own.threads ?? config.threads,
    gpuLayers: own.gpuLayers ?? config.gpuLayers,
    parallel: own.parallel ?? config.parallel,
    batchSize: own.batchSize,
    maxQueue: own.maxQueue ?? config.maxQueue,
    useMmap: own.useMmap,
    chatTemplate: own.chatTemplate ?? config.chatTemplate,
    defaultTimeoutMs: config.timeoutMs,
    promptCacheBytes: mib(own.promptCacheMb ?? config.promptCacheMb),
    promptCacheDir,
    promptCacheDiskBytes: mib(config.promptCacheDiskMb),
    responsiveEventLoop: config.responsiveEventLoop,
    threadPoll: config.threadPoll,
  }
  // `__faults` is napi-llama's test-only hook, deliberately not in its public types.
  if (config.faults) Object.assign(options, { __faults: config.faults })
  return options
}

/** An engine per OpenAI-compatible server URL, as LLM_BACKENDS and models-file `backends` name them. */
export function connectBackend(config: Config, url: string, model?: string) {
  return Engine.connect({
    baseURL: url,
    // A key in the URL (http://:KEY@host) is that backend's own and wins.
    apiKey: new URL(url).password ? undefined : config.backendApiKey,
    timeoutMs: config.timeoutMs,
    model,
  })
}

/** Loads a model: its file here, a pool over its servers, or both pooled. */
export function modelLoader(config: Config): (spec: ModelSpec) => Promise<ModelEngine> {
  // Several models keep their saved states in a folder each, so one model's never crowd out
  // another's; the one model of LLM_MODEL_PATH keeps them in the folder itself.
  const cacheDirOf = (spec: ModelSpec) => (config.models && config.promptCacheDir ? path.join(config.promptCacheDir, encodeURIComponent(spec.name)) : config.promptCacheDir)
  return async (spec) => {
    const { source } = spec
    const loadFile = (file: string) => Engine.load(engineLoadOptions(config, file, spec, cacheDirOf(spec)))
    if (source.kind === 'file') return loadFile(source.file)
    const connect = (url: string) => connectBackend(config, url, spec.remoteModel)
    const members =
      source.kind === 'remote'
        ? source.urls.map(connect)
        : source.backends.map((b) => (b.kind === 'local' ? loadFile(source.file) : connect(b.url)))
    return Engine.pool(await allOrNone(members), { timeoutMs: config.timeoutMs, maxQueue: spec.maxQueue ?? config.maxQueue })
  }
}

/** Every pool member, or none: when one fails, those that came up are freed again. */
async function allOrNone(members: Promise<PoolMember>[]): Promise<PoolMember[]> {
  const settled = await Promise.allSettled(members)
  const failure = settled.find((s) => s.status === 'rejected')
  if (!failure) return settled.map((s) => (s as PromiseFulfilledResult<PoolMember>).value)
  await Promise.all(settled.map((s) => (s.status === 'fulfilled' ? s.value.unload() : undefined)))
  throw failure.reason
}
