// What `<model>` names: a path to a .gguf file, or a name of the fetch script's catalog
// (scripts/fetch-model.js, the one table of the models `pull` fetches by name).
import * as fs from 'node:fs'
import * as path from 'node:path'
import { CATALOG, MODELS_DIR, modelPath } from '../../scripts/fetch-model'
import { CliError } from './cli-error'

export function catalogNames(): string[] {
  return Object.keys(CATALOG)
}

export function isCatalogName(text: string): boolean {
  return Object.prototype.hasOwnProperty.call(CATALOG, text)
}

export function modelsDir(): string {
  return MODELS_DIR
}

/** What every command taking `<model>` says about it in its help. */
export const MODEL_OPERAND_NOTE = `<model> is a path to a .gguf file or the name of a pulled model (${catalogNames().join(', ')}).`

/**
 * The file `<model>` stands for. A catalog name means its file in the models folder (a path
 * such as `./smollm2` means the file); nothing is downloaded here: `pull` does that.
 */
export function resolveModel(text: string): string {
  if (isCatalogName(text)) {
    const file = modelPath(text)
    if (fs.existsSync(file)) return file
    throw new CliError('MODEL_NOT_FOUND', `${text} is not in ${MODELS_DIR}: run napi-llama pull ${text}`)
  }
  const file = path.resolve(text)
  let stat: fs.Stats
  try {
    stat = fs.statSync(file)
  } catch (_) {
    const hint = text.includes(path.sep) || text.endsWith('.gguf') ? '' : ` (a model name is one of ${catalogNames().join(', ')})`
    throw new CliError('MODEL_NOT_FOUND', `no model file at ${file}${hint}`)
  }
  if (!stat.isFile()) throw new CliError('MODEL_NOT_FOUND', `${file} is not a file: give the path of a .gguf model`)
  return file
}
