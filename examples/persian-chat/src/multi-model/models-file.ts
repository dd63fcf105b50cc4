// The models file (`LLM_MODELS_FILE`): the models this service may serve, each under the name
// requests and responses use. Declared once as a zod schema; the TypeScript types come from it.
// The file is read at start, and any mistake in it stops the start with a message naming the
// entry and field, as a bad environment variable does.
import fs from 'node:fs'
import path from 'node:path'
import { z } from 'zod'
import type { Backend } from '../config'
import { chatTemplate } from '../chat-template'
import { ConfigError } from '../config-error'
import { isFetchedModelName, modelFileOf } from '../model-files'

/** Names become model ids, metrics labels and folder names: plain characters only. */
const MODEL_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$/

const positiveInt = z.number().int().min(1)

function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value)
    return url.protocol === 'http:' || url.protocol === 'https:'
  } catch {
    return false
  }
}

export const ModelEntrySchema = z
  .strictObject({
    name: z.string().regex(MODEL_NAME, 'must be 1 to 64 letters, digits, or . _ : - (starting with a letter or digit)'),
    /** A GGUF file (relative to the models file's folder) or a name of the addon's fetch script. */
    path: z.string().min(1).optional(),
    /**
     * OpenAI-compatible servers (llama-server, vLLM) serving this model, instead of a path. A URL
     * may carry its key as its password (`http://:KEY@host:8080`); else LLM_BACKEND_API_KEY.
     */
    backends: z.array(z.string().refine(isHttpUrl, 'must be an http or https URL')).min(1).optional(),
    /** The model's id on those servers, when they serve several. Default: the first they list. */
    remoteModel: z.string().min(1).optional(),
    /** Serves requests that name no model (else the first entry does). */
    default: z.boolean().optional(),
    /** Overrides LLM_MODEL_IDLE_TTL_MS for this model; 0 keeps it loaded until evicted. */
    idleTtlMs: z.number().int().min(0).optional(),
    // Load options; each unset one takes the service's LLM_* value.
    contextSize: z.number().int().min(256).optional(),
    parallel: z.number().int().min(1).max(64).optional(),
    threads: positiveInt.optional(),
    gpuLayers: z.number().int().min(0).optional(),
    batchSize: positiveInt.optional(),
    maxQueue: z.number().int().min(0).optional(),
    useMmap: z.boolean().optional(),
    /** As LLM_CHAT_TEMPLATE; a `.jinja` file is relative to the models file's folder. */
    chatTemplate: z.string().min(1).optional(),
    promptCacheMb: z.number().int().min(0).optional(),
    // Sampling defaults (requests may override them) and the reply cap.
    maxTokens: positiveInt.optional(),
    temperature: z.number().min(0).max(2).optional(),
    topP: z.number().min(0).max(1).optional(),
    repeatPenalty: z.number().min(0.5).max(2).optional(),
  })
  .refine((m) => (m.path === undefined) !== (m.backends === undefined), {
    error: 'needs either path (a GGUF file or a fetch-model name) or backends (server URLs), not both',
  })
  .refine((m) => m.backends !== undefined || m.remoteModel === undefined, { error: 'applies only with backends', path: ['remoteModel'] })

export const ModelsFileSchema = z
  .strictObject({ models: z.array(ModelEntrySchema).min(1, 'must list at least one model') })
  .superRefine((file, ctx) => {
    const seen = new Set<string>()
    file.models.forEach((m, i) => {
      if (seen.has(m.name)) ctx.addIssue({ code: 'custom', path: ['models', i, 'name'], message: `"${m.name}" is used by an earlier entry` })
      seen.add(m.name)
    })
    if (file.models.filter((m) => m.default).length > 1) ctx.addIssue({ code: 'custom', path: ['models'], message: 'more than one entry says default: true' })
  })

export type ModelEntry = z.infer<typeof ModelEntrySchema>

/**
 * Where a model's replies come from: a GGUF file loaded here, OpenAI-compatible servers (pooled),
 * or, with LLM_BACKENDS only, the file loaded here pooled with servers, in `backends`' order.
 */
export type ModelSource =
  | { kind: 'file'; file: string; sizeBytes: number }
  | { kind: 'remote'; urls: string[] }
  | { kind: 'pool'; file: string; sizeBytes: number; backends: Backend[] }

/** One model the service serves: an entry of the file, with its source resolved and checked. */
export interface ModelSpec extends ModelEntry {
  source: ModelSource
  /** The template itself (a file's or a shipped one's text, or the value as written), read at start. */
  chatTemplate?: string
  isDefault: boolean
  /**
   * Loaded when the service starts and kept until it stops, never by a request: until it is in,
   * requests for it are refused at once (the one model of LLM_MODEL_PATH). Otherwise the first
   * request that names the model loads it.
   */
  loadAtStart: boolean
}

/** `['models', 1, 'name']` → `models[1].name`. */
function fieldPath(parts: PropertyKey[]): string {
  return parts.map((p, i) => (typeof p === 'number' ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join('')
}

/** Reads and checks the models file; every problem is a ConfigError naming the entry and field. */
export function readModelsFile(file: string): ModelSpec[] {
  const where = `LLM_MODELS_FILE (${file})`
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(`${where} cannot be read: ${(err as Error).message}`)
  }
  let json: unknown
  try {
    json = JSON.parse(text)
  } catch (err) {
    throw new ConfigError(`${where} is not valid JSON: ${(err as Error).message}`)
  }
  const parsed = ModelsFileSchema.safeParse(json)
  if (!parsed.success) {
    const issue = parsed.error.issues[0]
    const field = issue.code === 'unrecognized_keys' ? fieldPath([...issue.path, issue.keys[0]]) : fieldPath(issue.path)
    const message = issue.code === 'unrecognized_keys' ? 'not a known field' : issue.message
    throw new ConfigError(`${where}: ${field || 'the file'}: ${message}`)
  }
  const baseDir = path.dirname(file)
  const entries = parsed.data.models
  const defaultIndex = Math.max(0, entries.findIndex((m) => m.default))
  return entries.map((entry, i) => {
    const at = `${where}: models[${i}]`
    const template = chatTemplate(entry.chatTemplate, `${at}.chatTemplate`, baseDir)
    return { ...entry, chatTemplate: template, source: sourceOf(entry, baseDir, at), isDefault: i === defaultIndex, loadAtStart: false }
  })
}

function sourceOf(entry: ModelEntry, baseDir: string, where: string): ModelSource {
  if (entry.backends) return { kind: 'remote', urls: entry.backends }
  const value = entry.path!
  const file = modelFileOf(value, baseDir)
  let sizeBytes: number
  try {
    sizeBytes = fs.statSync(file).size
  } catch {
    const hint = isFetchedModelName(value) ? ` (npm run fetch-model ${value} in the addon fetches it)` : ''
    throw new ConfigError(`${where}.path: no model file at ${file}${hint}`)
  }
  return { kind: 'file', file, sizeBytes }
}
