#!/usr/bin/env node
// `npm test`: fetches the test models, runs the engine's cargo tests (same build flags as the
// addon, so llama.cpp is not compiled again) and the Jest suites, then prints one summary line
// `N passed, N failed` and exits non-zero on any failure.
//   node scripts/test.js [--only cargo|jest] [extra jest args]
'use strict'

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { ROOT, targetTriple, buildEnv } = require('./build-env')
const { ensureModel } = require('./fetch-model')

function runCargo() {
  const env = buildEnv()
  const r = spawnSync('cargo', ['test', '--release', '--lib', '--target', targetTriple(), '--', '--test-threads=1'], {
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

function runJest(extra) {
  const out = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'napi-llama-jest-')), 'result.json')
  const jest = path.join(ROOT, 'node_modules', 'jest', 'bin', 'jest.js')
  const r = spawnSync(process.execPath, [jest, '--runInBand', '--json', `--outputFile=${out}`, ...extra], {
    cwd: ROOT,
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

function main() {
  const args = process.argv.slice(2)
  const onlyAt = args.indexOf('--only')
  const only = onlyAt >= 0 ? args.splice(onlyAt, 2)[1] : null
  ensureModel('smollm2')
  ensureModel('gemma3')
  const totals = { passed: 0, failed: 0 }
  for (const [name, run] of [
    ['cargo', () => runCargo()],
    ['jest', () => runJest(args)],
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
