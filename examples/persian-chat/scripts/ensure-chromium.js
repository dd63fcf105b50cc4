#!/usr/bin/env node
// Finds a Chromium for the browser tests (CHROMIUM_PATH, or Debian's `chromium`), installing
// Debian's package with apt-get when it is missing and we are root. Otherwise it stops with a
// message naming the package. `node scripts/ensure-chromium.js` prints the path it found.
'use strict'

const fs = require('node:fs')
const { spawnSync } = require('node:child_process')

const CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome', '/usr/bin/google-chrome-stable']

function findChromium() {
  if (process.env.CHROMIUM_PATH) return fs.existsSync(process.env.CHROMIUM_PATH) ? process.env.CHROMIUM_PATH : null
  return CANDIDATES.find((p) => fs.existsSync(p)) || null
}

function log(message) {
  process.stderr.write(`[ensure-chromium] ${message}\n`)
}

function ensureChromium() {
  const found = findChromium()
  if (found) return found
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { stdio: 'ignore' }).status === 0
  if (!isRoot || !hasApt) {
    throw new Error(
      'Chromium is needed for the web page tests and was not found. Install the Debian package `chromium` ' +
        '(sudo apt-get install chromium) or set CHROMIUM_PATH to a Chromium or Chrome binary.',
    )
  }
  log('installing the Debian package `chromium` with apt-get (needed by the web page tests)')
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  // With its recommended packages (fonts among them): the set the browser tests were run with.
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', 'chromium']]) {
    const r = spawnSync('apt-get', args, { stdio: ['ignore', 'inherit', 'inherit'], env })
    if (r.status !== 0) throw new Error(`apt-get ${args.join(' ')} failed (exit ${r.status}); install the Debian package \`chromium\` by hand`)
  }
  const installed = findChromium()
  if (!installed) throw new Error('apt-get installed chromium but no binary was found at ' + CANDIDATES.join(', '))
  return installed
}

module.exports = { findChromium, ensureChromium }

if (require.main === module) {
  try {
    console.log(ensureChromium())
  } catch (err) {
    log(err.message)
    process.exit(1)
  }
}
