#!/usr/bin/env node
'use strict'
// The release flow: builds the portable addon, places it with its shared libraries and ggml
// backends in this platform's package (npm/<platform>/), and packs that package and the main
// one with `npm pack`.
//
//   npm run release:pack [-- --out DIR] [--no-vulkan]
//
// Only this machine's platform package can be built here. Linux x64 (glibc) is the one the
// flow builds today; the others are declared in npm/ and in the packed main package, and need
// the flow ported to their toolchains (dylib/dll collection, the addon-folder lookup on
// Windows) before they can be built there.
// Prints the tarballs' paths, one a line, on stdout.

const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')
const { spawnSync } = require('node:child_process')
const { PLATFORMS, platform, platformPackageName } = require('../native-loader')
const { buildPortable, place } = require('./portable-build')

const ROOT = path.join(__dirname, '..')

function log(msg) {
  process.stderr.write(`[release] ${msg}\n`)
}

/**
 * The platform packages as the main package's optionalDependencies, at its own version. They
 * are written into package.json only while it is packed (as napi-rs's `prepublish` does): in a
 * clone, npm install must not fetch names from the registry that only a release publishes.
 */
function optionalDependencies(version) {
  return Object.fromEntries(
    Object.values(PLATFORMS)
      .filter((p) => p.prebuilt)
      .map((p) => [platformPackageName(p), version]),
  )
}

function packMainPackage(out) {
  const file = path.join(ROOT, 'package.json')
  const original = fs.readFileSync(file, 'utf8')
  const manifest = JSON.parse(original)
  manifest.optionalDependencies = optionalDependencies(manifest.version)
  fs.writeFileSync(file, `${JSON.stringify(manifest, null, 2)}\n`)
  try {
    return npmPack(ROOT, out)
  } finally {
    fs.writeFileSync(file, original)
  }
}

function npmPack(dir, out) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  const r = spawnSync(npm, ['pack', '--json', '--pack-destination', out], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 2] })
  if (r.status !== 0) throw new Error(`npm pack in ${dir} failed (exit ${r.status})`)
  const [report] = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')))
  return path.join(out, report.filename)
}

/** Copies npm/<tag>/ to a staging folder, with the main package's version, plus the build. */
function stagePlatformPackage(entry, files, staging) {
  const source = path.join(ROOT, 'npm', entry.tag)
  const dir = path.join(staging, entry.tag)
  fs.rmSync(dir, { recursive: true, force: true })
  fs.mkdirSync(dir, { recursive: true })
  const version = require(path.join(ROOT, 'package.json')).version
  const manifest = JSON.parse(fs.readFileSync(path.join(source, 'package.json'), 'utf8'))
  manifest.version = version
  fs.writeFileSync(path.join(dir, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  fs.copyFileSync(path.join(source, 'README.md'), path.join(dir, 'README.md'))
  place(files, dir, manifest.main)
  return dir
}

/** Builds and packs; returns the tarballs' paths. */
function pack(args = []) {
  const outAt = args.indexOf('--out')
  const out = path.resolve(outAt >= 0 ? args[outAt + 1] : path.join(ROOT, 'target', 'release-packages'))
  const vulkan = !args.includes('--no-vulkan')
  fs.mkdirSync(out, { recursive: true })
  const entry = platform()
  if (!entry || !entry.prebuilt) throw new Error(`no platform package is declared for ${process.platform}-${process.arch}`)
  const files = buildPortable({ vulkan })
  const dir = stagePlatformPackage(entry, files, path.join(out, 'staging'))
  const tarballs = [npmPack(dir, out), packMainPackage(out)]
  const skipped = Object.values(PLATFORMS)
    .filter((p) => p.prebuilt && p.tag !== entry.tag)
    .map((p) => platformPackageName(p))
  log(`packed ${platformPackageName(entry)} and napi-llama; not built on this machine: ${skipped.join(', ')}`)
  return tarballs
}

if (require.main === module) {
  try {
    for (const tarball of pack(process.argv.slice(2))) console.log(tarball)
  } catch (err) {
    log(err.message)
    process.exit(1)
  }
}

module.exports = { pack }
