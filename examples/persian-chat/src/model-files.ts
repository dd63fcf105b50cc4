// Where model files are: the addon's fetch-script names (`smollm2`, `gemma3`, `minilm`) stand
// for their files in its models folder; anything else is a path.
import path from 'node:path'

/** The files `npm run fetch-model NAME` (in the addon) puts in its models folder. */
const FETCHED_MODELS: Record<string, string> = {
  smollm2: 'SmolLM2-135M-Instruct.Q4_1.gguf',
  gemma3: 'gemma-3-270m-q4_k_m.gguf',
  minilm: 'all-MiniLM-L6-v2.f32.gguf',
}

/** The addon's models folder, resolved through its package so a linked or installed copy both work. */
function addonModelsDir(): string {
  const addonRoot = path.dirname(require.resolve('napi-llama/package.json'))
  return process.env.NAPI_LLAMA_MODELS_DIR || path.join(addonRoot, 'models')
}

/** Where the addon's fetch script keeps Gemma 3 (`npm run fetch-model gemma3` in the addon). */
export function defaultModelPath(): string {
  return path.join(addonModelsDir(), FETCHED_MODELS.gemma3)
}

/** True for a name of the addon's fetch script. */
export function isFetchedModelName(value: string): boolean {
  return Object.prototype.hasOwnProperty.call(FETCHED_MODELS, value)
}

/** A fetch-script name → its file; a relative path is taken from `baseDir`. */
export function modelFileOf(value: string, baseDir = process.cwd()): string {
  if (isFetchedModelName(value)) return path.join(addonModelsDir(), FETCHED_MODELS[value])
  return path.resolve(baseDir, value)
}
