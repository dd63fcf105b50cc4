#!/usr/bin/env node
// `npm test`: fetches the test models, builds llama-server once per machine (the remote-engine
// suites run it), runs the engine's cargo tests (same build flags as the
// addon, so llama.cpp is not compiled again), the addon's Jest suites and the Persian chat
// service's suites (examples/persian-chat: installs its dependencies and Chromium when missing),
// then prints one summary line `N passed, N failed` and exits non-zero on any failure.
//   node scripts/test.js [--only cargo|jest|example] [extra jest args]
'use strict'

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { ROOT, targetTriple, buildEnv, forgetStaleLlamaBuilds, targetDir, libraryName } = require('./build-env')
const { ensureModel } = require('./fetch-model')
const { ensureLlamaServer } = require('./llama-server')
const release = require('./release')
const { aptInstall } = require('./system-packages')

const EXAMPLE = path.join(ROOT, 'examples', 'persian-chat')

const FAULTS_FEATURE = ['--features', 'fault-injection']

function runCargo() {
  const env = buildEnv()
  forgetStaleLlamaBuilds(env)
  const r = spawnSync('cargo', ['test', '--release', '--lib', '--target', targetTriple(), ...FAULTS_FEATURE, '--', '--test-threads=1'], {
    cwd: ROOT,
    env,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 1024 * 1024,
  })
  process.stdout.write(r.stdout || '')
  let passed = 0
  let failed = 0
  for (const m of (r.stdout || '').matchAll(/test result: \w+\. (\d+) passed; (\d+) failed/g)) {
    passed += Number(m[1])
    failed += Number(m[2])
  }
  if (r.status !== 0 && failed === 0) failed = 1 // a build failure or crash counts
  return { passed, failed }
}

/**
 * The addon the Jest suites load: the release build plus the test-only fault injection, kept
 * in target/ so that the installed addon stays the release build. Returns its path, or null
 * when the build failed. Cargo keeps both feature sets' artifacts: neither rebuilds the other.
 */
function buildTestAddon() {
  const env = buildEnv()
  forgetStaleLlamaBuilds(env)
  const triple = targetTriple()
  const r = spawnSync('cargo', ['build', '--release', '--lib', '--target', triple, ...FAULTS_FEATURE], { cwd: ROOT, env, stdio: ['ignore', 2, 2] })
  if (r.status !== 0) return null
  const built = path.join(targetDir(env), triple, 'release', libraryName())
  const dir = path.join(targetDir(env), 'napi-llama-test')
  fs.mkdirSync(dir, { recursive: true })
  const dest = path.join(dir, 'napi-llama.node')
  fs.copyFileSync(built, `${dest}.tmp`)
  fs.renameSync(`${dest}.tmp`, dest)
  return dest
}

/**
 * Mesa's software Vulkan device (lavapipe) and the Vulkan loader, which the Vulkan suite runs
 * on: installed with apt when running as root, else named.
 */
function ensureLavapipe() {
  const icd = ['/usr/share/vulkan/icd.d/lvp_icd.x86_64.json', '/usr/share/vulkan/icd.d/lvp_icd.aarch64.json'].some((f) => fs.existsSync(f))
  const loader = /\blibvulkan\.so\.1\b/.test(spawnSync('/sbin/ldconfig', ['-p'], { encoding: 'utf8' }).stdout || '')
  if (icd && loader) return
  const packages = ['mesa-vulkan-drivers', 'libvulkan1']
  if (aptInstall(packages, "Mesa's software Vulkan device for the Vulkan suite", (m) => process.stderr.write(`[test] ${m}\n`))) return
  throw new Error(`the Vulkan suite needs ${packages.join(' ')} (Debian: sudo apt-get install ${packages.join(' ')})`)
}

/** Runs Jest in `cwd` and counts its results from the JSON report. */
function runJest(cwd, extra) {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'napi-llama-jest-')), 'result.json')
  const jest = path.join(cwd, 'node_modules', 'jest', 'bin', 'jest.js')
  const r = spawnSync(process.execPath, [jest, '--runInBand', '--json', `--outputFile=${out}`, ...extra], {
    cwd,
    stdio: 'inherit',
  })
  let passed = 0
  let failed = 0
  try {
    const result = JSON.parse(fs.readFileSync(out, 'utf8'))
    passed = result.numPassedTests
    failed = result.numFailedTests + (result.numRuntimeErrorTestSuites || 0)
  } catch (_) {
    failed = 1
  }
  if (r.status !== 0 && failed === 0) failed = 1
  return { passed, failed }
}

/** The example service's dependencies, installed when missing or older than its lockfile. */
function ensureExampleInstalled() {
  const installed = path.join(EXAMPLE, 'node_modules', '.package-lock.json')
  const lock = path.join(EXAMPLE, 'package-lock.json')
  if (fs.existsSync(installed) && fs.statSync(installed).mtimeMs >= fs.statSync(lock).mtimeMs) return true
  process.stderr.write('[test] installing examples/persian-chat dependencies (npm ci)\n')
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: EXAMPLE, stdio: ['ignore', 2, 2] })
  return r.status === 0
}

function runExample(extra) {
  if (!ensureExampleInstalled()) return { passed: 0, failed: 1 }
  try {
    require(path.join(EXAMPLE, 'scripts', 'ensure-chromium.js')).ensureChromium()
  } catch (err) {
    process.stderr.write(`[test] ${err.message}\n`)
    return { passed: 0, failed: 1 }
  }
  return runJest(EXAMPLE, extra)
}

function main() {
  const args = process.argv.slice(2)
  const onlyAt = args.indexOf('--only')
  const only = onlyAt >= 0 ? args.splice(onlyAt, 2)[1] : null
  ensureModel('smollm2')
  ensureModel('gemma3')
  ensureModel('minilm')
  const totals = { passed: 0, failed: 0 }
  if (!only || only !== 'cargo') {
    const addon = buildTestAddon()
    if (!addon) {
      console.log('0 passed, 1 failed')
      process.exit(1)
    }
    // Every Jest suite (the example service's too) loads this build through napi-rs's loader.
    process.env.NAPI_RS_NATIVE_LIBRARY_PATH = addon
    // The remote-engine and pool suites run llama.cpp's own llama-server: built once per
    // machine into a cache outside the checkout, never inside a test.
    try {
      process.env.NAPI_LLAMA_LLAMA_SERVER = ensureLlamaServer().server
    } catch (err) {
      process.stderr.write(`[test] llama-server is needed by the remote-engine suites and could not be built: ${err.message}\n`)
      console.log('0 passed, 1 failed')
      process.exit(1)
    }
    // The packed-install and Vulkan suites use this run's release: the portable build (cached
    // outside the checkout like llama-server) packed as a user would get it. Without it those
    // two suites fail with the reason; every other suite still runs.
    if (only !== 'example') {
      try {
        ensureLavapipe()
        const out = path.join(targetDir(), 'release-packages')
        fs.rmSync(out, { recursive: true, force: true })
        release.pack(['--out', out])
        process.env.NAPI_LLAMA_RELEASE_DIR = out
      } catch (err) {
        process.stderr.write(`[test] the packed-install and Vulkan suites need the release packages, which could not be made: ${err.message}\n`)
        process.env.NAPI_LLAMA_RELEASE_ERROR = err.message
      }
    }
  }
  for (const [name, run] of [
    ['cargo', () => runCargo()],
    ['jest', () => runJest(ROOT, args)],
    ['example', () => runExample(only === 'example' ? args : [])],
  ]) {
    if (only && only !== name) continue
    const r = run()
    process.stderr.write(`[test] ${name}: ${r.passed} passed, ${r.failed} failed\n`)
    totals.passed += r.passed
    totals.failed += r.failed
  }
  console.log(`${totals.passed} passed, ${totals.failed} failed`)
  process.exit(totals.failed > 0 ? 1 : 0)
}

main()
