#!/usr/bin/env node
// Builds the native addon from source (run by `npm install`): checks for the system tools
// llama.cpp needs, installs them with apt when running as root, then compiles in release
// mode and places napi-llama.<platform>.node next to index.js.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { localAddonFile } = require('../native-loader')
const { has, aptInstall } = require('./system-packages')
const { ROOT, targetTriple, buildEnv, forgetStaleLlamaBuilds, describeBuild, targetDir, libraryName } = require('./build-env')

function say(msg) {
  process.stderr.write(`[napi-llama] ${msg}\n`)
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
  if (aptInstall(missing, 'missing build tools', say)) return
  say(`cannot build: missing system packages: ${missing.join(', ')}`)
  say(`install them (Debian/Ubuntu: sudo apt-get install ${missing.join(' ')}) and run npm install again`)
  process.exit(1)
}

/**
 * Whether the prebuilt platform package loads, asked in a child process (a binary that crashes
 * on this machine must not take the install down): null when it loads, else the reason.
 */
function prebuiltUnusable() {
  const probe = `const r = require(${JSON.stringify(path.join(ROOT, 'native-loader.js'))}).loadPrebuilt(); if (r.reason) { process.stdout.write(r.reason); process.exit(3) }`
  const r = spawnSync(process.execPath, ['-e', probe], { encoding: 'utf8' })
  if (r.status === 0) return null
  return r.stdout || `loading it ended with ${r.signal || `exit ${r.status}`}`
}

/**
 * `npm run build:bindings`: rebuilds the addon through napi-rs's CLI, which also writes the
 * types (binding.d.ts) from the Rust doc comments. The loader (binding.js, native-loader.js)
 * is ours: it tries the prebuilt platform package before a local build. String
 * enums become string unions (`--no-const-enum`), which callers compare with plain strings.
 */
function buildBindings() {
  const napi = path.join(ROOT, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
  const args = [napi, 'build', '--platform', '--release', '--no-const-enum', '--no-js', '--dts', 'binding.d.ts']
  const r = spawnSync(process.execPath, args, { cwd: ROOT, env: buildEnv(), stdio: 'inherit' })
  process.exit(r.status === null ? 1 : r.status)
}

function main() {
  if (process.argv.includes('--bindings')) return buildBindings()
  const force = process.argv.includes('--force')
  if (!force && process.env.NAPI_LLAMA_SKIP_BUILD === '1') return say('NAPI_LLAMA_SKIP_BUILD=1: not building')
  if (!force) {
    const reason = prebuiltUnusable()
    if (!reason) return say('using the prebuilt platform package')
    say(`building from source: ${reason}`)
  }
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
  const dest = localAddonFile()
  // Copy to a temp name and rename: a running process may have the old file mapped.
  fs.copyFileSync(built, `${dest}.tmp`)
  fs.renameSync(`${dest}.tmp`, dest)
  say(`built ${path.relative(process.cwd(), dest) || dest}`)
}

main()
