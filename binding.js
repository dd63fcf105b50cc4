'use strict'
// The native addon's exports (their types: binding.d.ts, generated from the Rust doc comments).
module.exports = require('./native-loader').loadAddon()
