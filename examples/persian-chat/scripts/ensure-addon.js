#!/usr/bin/env node
// postinstall: `napi-llama` is linked from ../.. (file: dependency), and npm does not run a
// linked package's install script, so check here that its native binary loads and build it
// (the addon's own `npm install` step) when it does not.
'use strict'

const path = require('node:path')
const { spawnSync } = require('node:child_process')

function loads() {
  const r = spawnSync(process.execPath, ['-e', "require('napi-llama')"], { cwd: path.join(__dirname, '..'), encoding: 'utf8' })
  return r.status === 0
}

if (!loads()) {
  const addonRoot = path.dirname(require.resolve('napi-llama/package.json', { paths: [path.join(__dirname, '..')] }))
  process.stderr.write(`[persian-chat] napi-llama is not built yet; building it in ${addonRoot} (llama.cpp takes a few minutes)\n`)
  const r = spawnSync(process.execPath, [path.join(addonRoot, 'scripts', 'build-native.js')], { cwd: addonRoot, stdio: 'inherit' })
  if (r.status !== 0 || !loads()) {
    process.stderr.write('[persian-chat] napi-llama could not be built; see the messages above\n')
    process.exit(1)
  }
}
