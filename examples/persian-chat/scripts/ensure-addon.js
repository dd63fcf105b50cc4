#!/usr/bin/env node
// postinstall: `napi-llama` is linked from ../.. (file: dependency). Whether npm runs a linked
// package's own install steps depends on the npm version and its install-script policy, so
// check here that it loads, and do the addon's `npm install` work when it does not: compile its
// TypeScript layer (lib/ → dist/), then build its native binary.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const { spawnSync } = require('node:child_process')

function loads() {
  const r = spawnSync(process.execPath, ['-e', "require('napi-llama')"], { cwd: path.join(__dirname, '..'), encoding: 'utf8' })
  return r.status === 0
}

function run(command, args, cwd) {
  const r = spawnSync(command, args, { cwd, stdio: 'inherit' })
  return r.status === 0
}

/** dist/ holds the compiled TypeScript layer; compiling needs the addon's own TypeScript. */
function compileTypeScript(addonRoot) {
  if (fs.existsSync(path.join(addonRoot, 'dist', 'index.js'))) return true
  process.stderr.write(`[persian-chat] napi-llama's TypeScript layer is not compiled yet; compiling it in ${addonRoot}\n`)
  if (!fs.existsSync(path.join(addonRoot, 'node_modules', 'typescript'))) {
    // Its dev tools only: the native build below is a step of its own.
    if (!run('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund'], addonRoot)) return false
  }
  return run(process.execPath, [path.join(addonRoot, 'scripts', 'build-ts.js')], addonRoot)
}

if (!loads()) {
  const addonRoot = path.dirname(require.resolve('napi-llama/package.json', { paths: [path.join(__dirname, '..')] }))
  if (!compileTypeScript(addonRoot)) {
    process.stderr.write('[persian-chat] napi-llama\'s TypeScript layer could not be compiled; see the messages above\n')
    process.exit(1)
  }
  if (!loads()) {
    process.stderr.write(`[persian-chat] napi-llama is not built yet; building it in ${addonRoot} (llama.cpp takes a few minutes)\n`)
    const r = spawnSync(process.execPath, [path.join(addonRoot, 'scripts', 'build-native.js')], { cwd: addonRoot, stdio: 'inherit' })
    if (r.status !== 0 || !loads()) {
      process.stderr.write('[persian-chat] napi-llama could not be built; see the messages above\n')
      process.exit(1)
    }
  }
}
