// The module-level functions: one default engine, loaded by initialize() and freed by shutdown().
import type { ReadableStream } from 'node:stream/web'
import { NativeEngine } from '../binding'
import type { Generation, Metrics, ModelInfo } from '../binding'
import { Engine } from './engine'
import type { Health, StreamChunk } from './engine'
import { ErrorCode, LlamaError, invalid, reasonOf, toError } from './errors'
import { loadOptions } from './options'
import type { GenerateOptions, InitializeOptions, Input, ParsedLoadOptions } from './options'

/** One initialize() call's claim on the default engine; replaced or cleared by the next one or by shutdown(). */
interface Slot {
  engine?: Engine
  loading?: Promise<Engine> | null
}

let current: Slot | null = null
/** Why the last initialize() failed to load, for health(); cleared by a load or shutdown(). */
let lastLoadError: string | null = null

function notLoaded(): LlamaError {
  return new LlamaError(ErrorCode.MODEL_NOT_LOADED, 'no model is loaded: call initialize({ modelPath }) first and await it')
}

function loadedEngine(): Engine {
  if (current && current.engine) return current.engine
  if (current && current.loading) {
    throw new LlamaError(ErrorCode.MODEL_NOT_LOADED, 'the model is still loading: await initialize() before sending requests')
  }
  throw notLoaded()
}

/**
 * Loads the default engine. Rejects with `MODEL_LOAD_FAILED` (bad file), `INVALID_ARGUMENT`
 * (bad options) or `ALREADY_INITIALIZED` (a model is loaded or loading; pass `replace: true`).
 */
export async function initialize(options: InitializeOptions): Promise<ModelInfo> {
  let replace: boolean
  try {
    replace = options !== null && typeof options === 'object' && options.replace === true
  } catch (err) {
    throw invalid(`reading options.replace threw (${reasonOf(err)})`)
  }
  if (current && !replace) {
    const what = current.engine ? `"${current.engine.info.name}" is already loaded` : 'a model is already loading'
    throw new LlamaError(ErrorCode.ALREADY_INITIALIZED, `${what}: call shutdown() first, or pass { replace: true }`)
  }
  // Bad options must not cost the caller the model that is serving now.
  let parsed: ParsedLoadOptions
  try {
    parsed = loadOptions(options)
    NativeEngine.checkOptions(parsed.native)
    // The module's functions generate; an embedding engine is an Engine of its own.
    if (parsed.native.embeddings) throw invalid('initialize() loads the default engine, which generates: load an embedding engine with Engine.load({ ..., embeddings: true })')
  } catch (err) {
    throw toError(err)
  }
  const previous = current
  const slot: Slot = {}
  current = slot
  if (previous && previous.engine) await previous.engine.unload()
  else if (previous && previous.loading) await previous.loading.then((e) => e.unload(), () => {})
  const cancelled = () =>
    new LlamaError(ErrorCode.ABORTED, 'the load was cancelled by shutdown() or by initialize({ replace: true }) while it ran')
  // shutdown() or another replacing initialize() while the previous model was unloading.
  if (current !== slot) throw cancelled()
  slot.loading = Engine._start(parsed)
  try {
    const engine = await slot.loading
    if (current !== slot) {
      // shutdown() or a replacing initialize() came while this model loaded. They may have
      // found it still loading and gone on; unloading is idempotent.
      await engine.unload()
      throw cancelled()
    }
    slot.engine = engine
    lastLoadError = null
    return engine.info
  } catch (err) {
    const error = err as LlamaError
    if (current === slot) {
      current = null
      // Bad options are the caller's mistake, not the engine's state.
      if (error.code !== ErrorCode.INVALID_ARGUMENT) lastLoadError = error.message
    }
    throw err
  } finally {
    slot.loading = null
  }
}

/** Generates a completion (string input) or a chat reply (messages, rendered with the model's template). */
export function generate(input: Input, options?: GenerateOptions): Promise<Generation> {
  try {
    return loadedEngine().generate(input, options)
  } catch (err) {
    return Promise.reject(err)
  }
}

/** Streams the reply; use `for await`. Breaking out of the loop stops generation within one decode step. */
export function stream(input: Input, options?: GenerateOptions): ReadableStream<StreamChunk> {
  try {
    return loadedEngine().stream(input, options)
  } catch (err) {
    return new globalThis.ReadableStream<StreamChunk>({
      start(controller) {
        controller.error(err)
      },
    })
  }
}

/** Token ids of `text` (no BOS; special-token text stays text). */
export function tokenize(text: string): Uint32Array {
  return loadedEngine().tokenize(text)
}

/** Text of token ids; `detokenize(tokenize(s)) === s` for any well-formed string (a lone surrogate half becomes U+FFFD, as in any UTF-8 encoding). */
export function detokenize(tokens: Uint32Array | number[]): string {
  return loadedEngine().detokenize(tokens)
}

/** Prompt tokens an input costs (chat input is rendered with the template first). */
export function countTokens(input: Input): number {
  return loadedEngine().countTokens(input)
}

const UNLOADED_HEALTH: Readonly<Health> = Object.freeze({
  status: 'unloaded',
  modelName: null,
  contextSize: 0,
  uptimeMs: 0,
  lastError: null,
  slotsBusy: 0,
  slotsTotal: 0,
  queueDepth: 0,
})

/** Never throws. */
export function health(): Health {
  if (current && current.engine) return current.engine.health()
  if (current && current.loading) return { ...UNLOADED_HEALTH, status: 'loading' }
  if (lastLoadError) return { ...UNLOADED_HEALTH, status: 'error', lastError: lastLoadError }
  return { ...UNLOADED_HEALTH }
}

export function metrics(): Metrics {
  if (current && current.engine) return current.engine.metrics()
  // The engine's own zeroes: no second list of metric fields to keep in step.
  return NativeEngine.emptyMetrics()
}

/** Cancels in-flight work (it rejects with `ABORTED`) and frees the model. Safe to call twice. */
export async function shutdown(): Promise<void> {
  const slot = current
  current = null
  lastLoadError = null
  if (!slot) return
  if (slot.engine) await slot.engine.unload()
  else if (slot.loading) await slot.loading.then((e) => e.unload(), () => {})
}
