#!/usr/bin/env node
// Compiles the TypeScript layer (lib/ → dist/, what `npm run prepare` does) when dist/ is
// missing or older than anything it is built from. Jest runs it first (globalSetup), so the
// suites never test a stale dist/ after lib/ or the generated binding.d.ts changed.
//   node scripts/build-ts.js [--force]
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

const ROOT = path.join(__dirname, '..')
const DIST = path.join(ROOT, 'dist')

function files(dir, ext) {
  let out = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    if (entry.isDirectory()) out = out.concat(files(p, ext))
    else if (entry.name.endsWith(ext)) out.push(p)
  }
  return out
}

function isStale() {
  if (!fs.existsSync(path.join(DIST, 'index.js'))) return true
  const sources = [...files(path.join(ROOT, 'lib'), '.ts'), path.join(ROOT, 'binding.d.ts'), path.join(ROOT, 'tsconfig.build.json')]
  const newestSource = Math.max(...sources.map((p) => fs.statSync(p).mtimeMs))
  const oldestOutput = Math.min(...files(DIST, '.js').map((p) => fs.statSync(p).mtimeMs))
  return newestSource > oldestOutput
}

function compile() {
  let tsc
  try {
    tsc = require.resolve('typescript/bin/tsc', { paths: [ROOT] })
  } catch (_) {
    throw new Error(`napi-llama: TypeScript is not installed in ${ROOT}: run npm install there (it compiles the TypeScript layer)`)
  }
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(ROOT, 'tsconfig.build.json')], { cwd: ROOT, stdio: 'inherit' })
  if (r.status !== 0) throw new Error(`napi-llama: compiling lib/ failed (tsc exit ${r.status}); see the errors above`)
}

/** Compiles when needed; true when it compiled. */
function ensureDist({ force = false } = {}) {
  if (!force && !isStale()) return false
  compile()
  return true
}

// Jest's globalSetup calls the module's export.
module.exports = async () => {
  ensureDist()
}
module.exports.ensureDist = ensureDist

if (require.main === module) {
  try {
    ensureDist({ force: process.argv.includes('--force') })
  } catch (err) {
    process.stderr.write(`${err.message}\n`)
    process.exit(1)
  }
}
