#!/usr/bin/env node
// Builds the native addon from source (run by `npm install`): checks for the system tools
// llama.cpp needs, installs them with apt when running as root, then compiles in release
// mode and places napi-llama.<platform>.node next to index.js.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { ROOT, targetTriple, buildEnv, forgetStaleLlamaBuilds, describeBuild, targetDir, libraryName } = require('./build-env')

function say(msg) {
  process.stderr.write(`[napi-llama] ${msg}\n`)
}

function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

function hasLibclang() {
  if (process.env.LIBCLANG_PATH && fs.existsSync(process.env.LIBCLANG_PATH)) return true
  const dirs = ['/usr/lib', '/usr/lib64', '/usr/local/lib', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu']
  try {
    for (const d of fs.readdirSync('/usr/lib')) if (d.startsWith('llvm')) dirs.push(path.join('/usr/lib', d, 'lib'))
  } catch (_) {}
  return dirs.some((d) => {
    try {
      return fs.readdirSync(d).some((f) => /^libclang(-[\d.]+)?\.so/.test(f))
    } catch (_) {
      return false
    }
  })
}

function ensureSystemTools() {
  if (process.platform !== 'linux') return
  const missing = []
  if (!has('cmake')) missing.push('cmake')
  if (!has('c++') && !has('g++') && !has('clang++')) missing.push('g++')
  if (!hasLibclang()) missing.push('libclang-dev')
  if (missing.length === 0) return
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (isRoot && has('apt-get')) {
    say(`installing missing build tools with apt-get: ${missing.join(' ')}`)
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    const update = spawnSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env })
    const install = spawnSync('apt-get', ['install', '-y', '-qq', ...missing], { stdio: 'inherit', env })
    if (update.status === 0 && install.status === 0) return
  }
  say(`cannot build: missing system packages: ${missing.join(', ')}`)
  say(`install them (Debian/Ubuntu: sudo apt-get install ${missing.join(' ')}) and run npm install again`)
  process.exit(1)
}

function prebuiltAvailable() {
  try {
    require.resolve(`napi-llama-${process.platform}-${process.arch}-gnu`)
    return true
  } catch (_) {
    return false
  }
}

/**
 * `npm run build:bindings`: rebuilds the addon through napi-rs's CLI, which also writes the
 * generated loader (binding.js) and types (binding.d.ts) from the Rust doc comments. String
 * enums become string unions (`--no-const-enum`), which callers compare with plain strings.
 */
function buildBindings() {
  const napi = path.join(ROOT, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
  const args = [napi, 'build', '--platform', '--release', '--no-const-enum', '--js', 'binding.js', '--dts', 'binding.d.ts']
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env: buildEnv(), stdio: 'inherit' })
  process.exit(r.status === null ? 1 : r.status)
}

function main() {
  if (process.argv.includes('--bindings')) return buildBindings()
  const force = process.argv.includes('--force')
  if (!force && process.env.NAPI_LLAMA_SKIP_BUILD === '1') return say('NAPI_LLAMA_SKIP_BUILD=1: not building')
  if (!force && prebuiltAvailable()) return say('using the prebuilt platform package')
  if (!has('cargo')) {
    say('cannot build: cargo (Rust) is not installed. Install it from https://rustup.rs and run npm install again')
    process.exit(1)
  }
  ensureSystemTools()
  const triple = targetTriple()
  const env = buildEnv()
  say(`building the native addon (release, ${triple}, llama.cpp CPU build: ${describeBuild(env)}); the first build compiles llama.cpp and takes several minutes`)
  forgetStaleLlamaBuilds(env)
  const build = spawnSync('cargo', ['build', '--release', '--lib', '--target', triple], { cwd: ROOT, env, stdio: 'inherit' })
  if (build.status !== 0) {
    say(`cargo build failed (exit ${build.status})`)
    process.exit(build.status || 1)
  }
  const built = path.join(targetDir(env), triple, 'release', libraryName())
  const platformTag = { 'x86_64-unknown-linux-gnu': 'linux-x64-gnu', 'aarch64-unknown-linux-gnu': 'linux-arm64-gnu', 'x86_64-apple-darwin': 'darwin-x64', 'aarch64-apple-darwin': 'darwin-arm64' }[triple]
  const dest = path.join(ROOT, `napi-llama.${platformTag}.node`)
  // Copy to a temp name and rename: a running process may have the old file mapped.
  fs.copyFileSync(built, `${dest}.tmp`)
  fs.renameSync(`${dest}.tmp`, dest)
  say(`built ${path.relative(process.cwd(), dest) || dest}`)
}

main()
