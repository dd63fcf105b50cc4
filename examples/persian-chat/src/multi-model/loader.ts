// How a model becomes an engine: the load options of a local GGUF (the service's LLM_* values,
// overridden by what a models-file entry sets) or a pool over the remote servers an entry names.
import path from 'node:path'
import { Engine, type InitializeOptions } from 'napi-llama'
import { chatTemplate, type Config } from '../config'
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
    chatTemplate: own.chatTemplate !== undefined ? chatTemplate(own.chatTemplate, 'chatTemplate') : config.chatTemplate,
    defaultTimeoutMs: config.timeoutMs,
    promptCacheBytes: mib(own.promptCacheMb ?? config.promptCacheMb),
    promptCacheDir,
    promptCacheDiskBytes: mib(config.promptCacheDiskMb),
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

/** Loads a models-file entry. */
export function modelLoader(config: Config): (spec: ModelSpec) => Promise<ModelEngine> {
  return async (spec) => {
    if (spec.source.kind === 'remote') {
      const members = await Promise.all(spec.source.urls.map((url) => connectBackend(config, url, spec.remoteModel)))
      return Engine.pool(members, { timeoutMs: config.timeoutMs, maxQueue: spec.maxQueue ?? config.maxQueue })
    }
    // Each model's saved states in a folder of its own, so one model's never crowd out another's.
    const cacheDir = config.promptCacheDir && path.join(config.promptCacheDir, encodeURIComponent(spec.name))
    return Engine.load(engineLoadOptions(config, spec.source.file, spec, cacheDir))
  }
}
