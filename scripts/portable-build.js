#!/usr/bin/env node
'use strict'
// The portable build that the platform packages ship (cargo feature `dynamic-backends`):
// llama.cpp and ggml as shared libraries, one ggml CPU backend per x86-64 variant (ggml picks
// the best one the CPU runs when the addon loads) and, where the Vulkan SDK is installed, the
// Vulkan backend. It goes to a cache folder outside the checkout, keyed by the llama.cpp
// build, as a cargo target directory: a machine that has it only recompiles our own crate.
//
//   node scripts/portable-build.js [--no-vulkan]   builds it, prints the artifacts' folder
//
// NAPI_LLAMA_CACHE_DIR moves the cache (default ~/.cache/napi-llama).

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { ROOT, targetTriple, libraryName, amxFixHeaderAt, copyBesideBuild, llamaCppSysVersion, forgetStaleLlamaBuilds, cacheRoot } = require('./build-env')
const { has, aptInstall } = require('./system-packages')

function log(msg) {
  process.stderr.write(`[portable-build] ${msg}\n`)
}

/** What the Vulkan backend needs at build time (Debian: libvulkan-dev glslc spirv-headers). */
function vulkanMissing() {
  const missing = []
  if (!fs.existsSync('/usr/include/vulkan/vulkan.hpp')) missing.push('libvulkan-dev')
  if (!has('glslc')) missing.push('glslc')
  if (!fs.existsSync('/usr/include/spirv/unified1/spirv.hpp')) missing.push('spirv-headers')
  return missing
}

/** Installs the Vulkan build tools with apt when running as root; returns what is still missing. */
function ensureVulkanTools() {
  const missing = vulkanMissing()
  if (missing.length === 0 || process.platform !== 'linux') return missing
  aptInstall(missing, 'the Vulkan build tools', log)
  return vulkanMissing()
}

/** The include folder of the Vulkan header shim, copied beside the build (see copyBesideBuild). */
function vulkanCompatIncludeAt(dir) {
  const header = copyBesideBuild(path.join('vulkan-compat', 'vulkan', 'vulkan.hpp'), dir)
  return path.dirname(path.dirname(header))
}

function targetDir(vulkan) {
  return path.join(cacheRoot(), `portable-llama-cpp-sys-2-${llamaCppSysVersion()}${vulkan ? '-vulkan' : ''}`)
}

/**
 * Builds the portable addon and returns its artifacts: the addon, the shared libraries it links
 * and the backend modules, all meant to sit in one folder.
 */
function buildPortable({ vulkan = true } = {}) {
  if (vulkan) {
    const missing = ensureVulkanTools()
    if (missing.length > 0) throw new Error(`the Vulkan backend needs ${missing.join(', ')} (Debian: apt-get install ${missing.join(' ')}); or build without it: --no-vulkan`)
  }
  const triple = targetTriple()
  const target = targetDir(vulkan)
  const env = { ...process.env, CARGO_TARGET_DIR: target }
  for (const k of Object.keys(env)) if (k.startsWith('GGML_')) delete env[k]
  delete env.RUSTFLAGS
  // ggml's sapphirerapids variant compiles AMX tile code: GCC 12 needs the same fix as `auto`.
  const fix = amxFixHeaderAt(path.join(target, 'napi-llama'))
  env.CFLAGS = `-include ${fix}`
  env.CXXFLAGS = `-include ${fix}`
  if (vulkan) {
    env.GGML_VULKAN = 'ON'
    // Vulkan headers older than ggml-vulkan expects (Debian 12's) lack one extension's types.
    env.CXXFLAGS += ` -isystem ${vulkanCompatIncludeAt(path.join(target, 'napi-llama'))}`
  }
  // The build key, as for the source build: a changed recipe reconfigures llama.cpp.
  env.GGML_NAPI_LLAMA_BUILD = ['dynamic-backends', env.CFLAGS, env.CXXFLAGS].join(' ').replace(/\s+/g, '_')
  forgetStaleLlamaBuilds(env)
  log(`building the portable addon (${triple}, every ggml CPU variant${vulkan ? ' + Vulkan' : ''}) in ${target}; the first build compiles llama.cpp and takes a while`)
  // JSON messages on stdout name the llama-cpp-sys-2 output folder this very build used.
  const r = spawnSync('cargo', ['build', '--release', '--lib', '--target', triple, '--features', 'dynamic-backends', '--message-format=json-render-diagnostics'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    maxBuffer: 256 * 1024 * 1024,
    stdio: ['ignore', 'pipe', 2],
  })
  if (r.status !== 0) throw new Error(`cargo build of the portable addon failed (exit ${r.status})`)
  let out = null
  let addon = null
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    const msg = JSON.parse(line)
    if (msg.reason === 'build-script-executed' && /llama-cpp-sys-2/.test(msg.package_id)) out = msg.out_dir
    if (msg.reason === 'compiler-artifact' && msg.target?.name === 'napi_llama' && msg.target.kind.includes('cdylib')) {
      addon = msg.filenames.find((f) => path.basename(f) === libraryName())
    }
  }
  if (!out || !addon) throw new Error('cargo did not report the llama-cpp-sys-2 output folder or the addon')
  return artifacts(out, addon)
}

/** The built files, from llama-cpp-sys-2's own output folder (never a stale hard link). */
function artifacts(out, addon) {
  const libs = []
  for (const dir of ['lib', 'lib64']) {
    const d = path.join(out, dir)
    if (!fs.existsSync(d)) continue
    for (const f of fs.readdirSync(d)) {
      // The versioned name (libllama.so.0) is what the addon's NEEDED entries ask for.
      if (/\.so(\.\d+)*$/.test(f) && !fs.lstatSync(path.join(d, f)).isSymbolicLink()) libs.push(path.join(d, f))
    }
  }
  const backends = fs.readdirSync(path.join(out, 'backends')).filter((f) => f.endsWith('.so')).map((f) => path.join(out, 'backends', f))
  return { addon, libs, backends, out }
}

/**
 * Copies the portable build into `dir` as the loader expects: the addon under `addonName`,
 * each shared library under the name the addon asks for (its soname), the backend modules.
 */
function place(files, dir, addonName) {
  fs.mkdirSync(dir, { recursive: true })
  const copy = (from, name) => {
    const dest = path.join(dir, name)
    fs.copyFileSync(from, `${dest}.tmp`)
    fs.renameSync(`${dest}.tmp`, dest)
    return name
  }
  const names = [copy(files.addon, addonName)]
  for (const lib of files.libs) names.push(copy(lib, soname(lib)))
  for (const b of files.backends) names.push(copy(b, path.basename(b)))
  return names
}

/** A shared library's SONAME (readelf), else its file name. */
function soname(file) {
  const r = spawnSync('readelf', ['-d', file], { encoding: 'utf8' })
  const m = /\(SONAME\)\s+Library soname: \[([^\]]+)\]/.exec(r.stdout || '')
  return m ? m[1] : path.basename(file)
}

module.exports = { buildPortable, place, targetDir, vulkanMissing, ensureVulkanTools }

if (require.main === module) {
  try {
    const files = buildPortable({ vulkan: !process.argv.includes('--no-vulkan') })
    console.log(files.out)
  } catch (e) {
    log(e.message)
    process.exit(1)
  }
}
