// A chat template setting (LLM_CHAT_TEMPLATE, a models-file entry's `chatTemplate`) as
// napi-llama's `chatTemplate` takes it, read at start so that a missing file stops the start.
import fs from 'node:fs'
import path from 'node:path'
import { ConfigError } from './config-error'

/** The templates napi-llama ships (`templates/<name>.jinja`), for models without a tool-aware one. */
export const SHIPPED_TEMPLATES = ['chatml-tools', 'chatml-thinking'] as const

/**
 * A shipped template's name (`chatml-tools`), a `.jinja` file (relative to `baseDir`), or the
 * value itself (Jinja source, or a family name such as `chatml`). Unset or blank: the model's own.
 * `name` is where the setting came from, for the error.
 */
export function chatTemplate(raw: string | undefined, name: string, baseDir = process.cwd()): string | undefined {
  const value = raw?.trim()
  if (!value) return undefined
  if ((SHIPPED_TEMPLATES as readonly string[]).includes(value)) {
    const root = path.dirname(require.resolve('napi-llama/package.json'))
    return fs.readFileSync(path.join(root, 'templates', `${value}.jinja`), 'utf8')
  }
  if (value.endsWith('.jinja')) {
    try {
      return fs.readFileSync(path.resolve(baseDir, value), 'utf8')
    } catch (err) {
      throw new ConfigError(`${name}=${value}: cannot read the template file (${(err as Error).message})`)
    }
  }
  return value
}
