'use strict'
// Finds and loads napi-llama's native addon, in this order:
//   1. NAPI_RS_NATIVE_LIBRARY_PATH, when set (a custom or test build);
//   2. the prebuilt platform package (napi-llama-<platform>, an optional dependency), whose
//      folder also holds llama.cpp's shared libraries and ggml's backends;
//   3. a source build next to this file (napi-llama.<platform>.node, made by the install
//      script when no prebuilt loads).
// The install script asks the same module whether a prebuilt loads before it builds.

const fs = require('node:fs')
const path = require('node:path')

/** Platforms with a prebuilt package (`prebuilt`) or a source build recipe. */
const PLATFORMS = {
  'linux-x64': { tag: 'linux-x64-gnu', triple: 'x86_64-unknown-linux-gnu', prebuilt: true },
  'linux-arm64': { tag: 'linux-arm64-gnu', triple: 'aarch64-unknown-linux-gnu', prebuilt: true },
  'darwin-arm64': { tag: 'darwin-arm64', triple: 'aarch64-apple-darwin', prebuilt: true },
  'darwin-x64': { tag: 'darwin-x64', triple: 'x86_64-apple-darwin', prebuilt: false },
  'win32-x64': { tag: 'win32-x64-msvc', triple: 'x86_64-pc-windows-msvc', prebuilt: true },
}

const PACKAGE_NAME = 'napi-llama'

function isMusl() {
  if (process.platform !== 'linux') return false
  try {
    return fs.readFileSync('/usr/bin/ldd', 'utf8').includes('musl')
  } catch {
    // No ldd: ask Node's own report, without the network section (it can wait on DNS).
    if (typeof process.report?.getReport !== 'function') return false
    process.report.excludeNetwork = true
    const report = process.report.getReport()
    return !(report && report.header && report.header.glibcVersionRuntime)
  }
}

/** This machine's platform entry, or null where napi-llama has no recipe at all. */
function platform() {
  const entry = PLATFORMS[`${process.platform}-${process.arch}`]
  if (!entry) return null
  // The Linux packages are built against glibc.
  if (process.platform === 'linux' && isMusl()) {
    return { ...entry, tag: entry.tag.replace('-gnu', '-musl'), triple: entry.triple.replace('-gnu', '-musl'), prebuilt: false }
  }
  return entry
}

function platformPackageName(entry = platform()) {
  return entry ? `${PACKAGE_NAME}-${entry.tag}` : null
}

function ownVersion() {
  return JSON.parse(fs.readFileSync(path.join(__dirname, 'package.json'), 'utf8')).version
}

/** The prebuilt addon, or a reason why it cannot be used: { binding, file } | { reason }. */
function loadPrebuilt() {
  const entry = platform()
  if (!entry) return { reason: `napi-llama has no prebuilt addon for ${process.platform}-${process.arch}` }
  if (!entry.prebuilt) return { reason: `napi-llama has no prebuilt addon for ${entry.tag}` }
  const name = platformPackageName(entry)
  let manifest
  try {
    manifest = require.resolve(`${name}/package.json`, { paths: [__dirname] })
  } catch {
    return { reason: `the platform package ${name} is not installed (optional dependencies omitted, or not published for this version)` }
  }
  const pkg = JSON.parse(fs.readFileSync(manifest, 'utf8'))
  if (pkg.version !== ownVersion()) {
    return { reason: `the platform package ${name} is version ${pkg.version}, napi-llama is ${ownVersion()}` }
  }
  const file = path.join(path.dirname(manifest), pkg.main)
  try {
    return { binding: require(file), file }
  } catch (err) {
    return { reason: `the platform package ${name} failed to load: ${err.message}` }
  }
}

/** The source build's file name next to this module. */
function localAddonFile(entry = platform()) {
  return entry ? path.join(__dirname, `${PACKAGE_NAME}.${entry.tag}.node`) : null
}

/** Loads the addon; throws one error that lists why each place failed. */
function loadAddon() {
  const override = process.env.NAPI_RS_NATIVE_LIBRARY_PATH
  if (override) return require(override)
  const reasons = []
  const prebuilt = loadPrebuilt()
  if (prebuilt.binding) return prebuilt.binding
  reasons.push(prebuilt.reason)
  const local = localAddonFile()
  if (local && fs.existsSync(local)) {
    try {
      return require(local)
    } catch (err) {
      reasons.push(`the source build ${local} failed to load: ${err.message}`)
    }
  } else {
    reasons.push('no source build next to it (npm install builds one when no prebuilt loads; `npm run build` rebuilds it)')
  }
  const error = new Error(`napi-llama: cannot load the native addon:\n  - ${reasons.join('\n  - ')}`)
  error.code = 'ERR_DLOPEN_FAILED'
  throw error
}

module.exports = { PLATFORMS, platform, platformPackageName, loadPrebuilt, localAddonFile, loadAddon }
