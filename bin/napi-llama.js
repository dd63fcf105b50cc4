#!/usr/bin/env node
// `npx napi-llama …`: the command line, written in TypeScript (lib/cli/) and compiled to
// dist/cli/ with the rest of the package.
'use strict'
const fs = require('node:fs')
const path = require('node:path')

const entry = path.join(__dirname, '..', 'dist', 'cli', 'main.js')
if (!fs.existsSync(entry)) {
  process.stderr.write(`napi-llama: INTERNAL: ${entry} is missing: run npm install (it compiles the TypeScript layer)\n`)
  process.exit(1)
}
require(entry)
  .main(process.argv.slice(2))
  .then((status) => {
    // Leave by the event loop running dry, so everything written reaches its reader.
    process.exitCode = status
  })
