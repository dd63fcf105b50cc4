'use strict'
// System packages the build and test scripts need: finding commands, and installing what is
// missing with apt when running as root (elsewhere the caller names the packages and stops).

const { spawnSync } = require('node:child_process')

/** Whether `cmd` is on PATH. */
function has(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

/**
 * Installs Debian packages with apt-get when this process is root and apt-get exists; `say`
 * reports why first. Returns whether the install ran and succeeded.
 */
function aptInstall(packages, why, say) {
  const isRoot = typeof process.getuid === 'function' && process.getuid() === 0
  if (packages.length === 0 || !isRoot || !has('apt-get')) return false
  say(`installing ${why} with apt-get: ${packages.join(' ')}`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  const update = spawnSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 2, 2], env })
  const install = spawnSync('apt-get', ['install', '-y', '-qq', ...packages], { stdio: ['ignore', 2, 2], env })
  return update.status === 0 && install.status === 0
}

module.exports = { has, aptInstall }
