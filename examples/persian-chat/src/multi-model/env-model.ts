// One-model mode (LLM_MODEL_PATH, LLM_BACKENDS) as a one-entry registry: the same loading,
// leasing, stall watch and shutdown as the models of LLM_MODELS_FILE, so there is one code path.
// The entry sets nothing of its own: its load options and sampling defaults are the service's
// LLM_* values, which every entry's unset fields take anyway.
import fs from 'node:fs'
import path from 'node:path'
import type { Config } from '../config'
import type { ModelSource, ModelSpec } from './models-file'

/** A model file's id in responses and /metrics: its name without `.gguf`. */
export function modelIdOf(file: string): string {
  return path.basename(file).replace(/\.gguf$/i, '')
}

/** The one model of LLM_MODEL_PATH, or of the servers LLM_BACKENDS names. */
export function envModelSpec(config: Config): ModelSpec {
  const source = envModelSource(config)
  return {
    // Servers without a local file name their model once connected (LlmService.modelId).
    name: source.kind === 'remote' ? 'remote' : modelIdOf(source.file),
    default: true,
    isDefault: true,
    loadAtStart: true,
    // Kept until the service stops.
    idleTtlMs: 0,
    source,
  }
}

function envModelSource(config: Config): ModelSource {
  const { backends, modelPath: file } = config
  const urls = backends.flatMap((b) => (b.kind === 'remote' ? [b.url] : []))
  if (urls.length === backends.length) return { kind: 'remote', urls }
  // The size is only an estimate against a memory budget, which one model does not have; the
  // default model may not even be there yet (the server fetches it at first start).
  const sizeBytes = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0
  return urls.length === 0 ? { kind: 'file', file, sizeBytes } : { kind: 'pool', file, sizeBytes, backends }
}
