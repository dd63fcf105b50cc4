// Where `npm test` put this run's release tarballs and the staged platform package (it runs
// the release flow before the suites; a suite never builds).
import fs from 'node:fs'
import path from 'node:path'

export interface ReleasePackages {
  /** napi-llama-<version>.tgz */
  main: string
  /** napi-llama-<platform>-<version>.tgz */
  platform: string
  /** The staged platform package folder: the portable addon, its libraries and backends. */
  platformDir: string
  /** The portable addon inside platformDir. */
  addon: string
}

export function releasePackages(): ReleasePackages {
  // npm test could not make them: the reason, instead of a second guess here.
  if (process.env.NAPI_LLAMA_RELEASE_ERROR) throw new Error(`the release packages could not be made: ${process.env.NAPI_LLAMA_RELEASE_ERROR}`)
  const dir = process.env.NAPI_LLAMA_RELEASE_DIR
  if (!dir) throw new Error('NAPI_LLAMA_RELEASE_DIR is not set: run these suites through `npm test`, which packs the release first (npm run release:pack)')
  const files = fs.readdirSync(dir)
  const main = files.find((f) => /^napi-llama-\d.*\.tgz$/.test(f))
  const platform = files.find((f) => /^napi-llama-(linux|darwin|win32)-.*\.tgz$/.test(f))
  if (!main || !platform) throw new Error(`no release tarballs in ${dir}`)
  const tag = /^napi-llama-(.+)-\d+\.\d+\.\d+.*\.tgz$/.exec(platform)![1]
  const platformDir = path.join(dir, 'staging', tag)
  return { main: path.join(dir, main), platform: path.join(dir, platform), platformDir, addon: path.join(platformDir, `napi-llama.${tag}.node`) }
}
