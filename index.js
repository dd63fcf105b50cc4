'use strict'
// napi-llama's JavaScript layer is TypeScript (lib/), compiled to dist/ by the package's
// prepare script, which npm runs after `npm install` in this repository and before packing.
const fs = require('node:fs')
const path = require('node:path')

const entry = path.join(__dirname, 'dist', 'index.js')
if (!fs.existsSync(entry)) {
  throw new Error(`napi-llama: ${entry} is missing: run npm install (it compiles the TypeScript layer)`)
}
module.exports = require(entry)
