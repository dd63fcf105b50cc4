'use strict'
// The one definition of how the native addon is compiled, shared by the install build,
// `npm test` (cargo test) and the benchmarks, so that all of them reuse one llama.cpp build
// in target/ instead of compiling it again (a change of flags means a ~5 minute rebuild).

const path = require('node:path')

const ROOT = path.join(__dirname, '..')

const TRIPLES = {
  'linux-x64': 'x86_64-unknown-linux-gnu',
  'linux-arm64': 'aarch64-unknown-linux-gnu',
  'darwin-x64': 'x86_64-apple-darwin',
  'darwin-arm64': 'aarch64-apple-darwin',
}

function targetTriple() {
  const triple = TRIPLES[`${process.platform}-${process.arch}`]
  if (!triple) throw new Error(`napi-llama has no build recipe for ${process.platform}-${process.arch}`)
  return triple
}

/**
 * Environment for cargo. The default is ggml's portable x86-64 build (AVX2/FMA/F16C, chosen
 * at compile time without -march=native): measured on this project's 2-core machines it
 * decodes faster than every native variant tried (README, "Build flags"). NAPI_LLAMA_NATIVE=1
 * compiles for this CPU instead (-C target-cpu=native, which makes llama.cpp use -march=native).
 */
function buildEnv(base = process.env) {
  const env = { ...base }
  const native = env.NAPI_LLAMA_NATIVE === '1' || env.NAPI_LLAMA_NATIVE === 'true'
  if (native && process.arch === 'x64') {
    env.RUSTFLAGS = [env.RUSTFLAGS, '-C target-cpu=native'].filter(Boolean).join(' ')
    // -march=native turns on AMX where the CPU lists it, but some VMs list AMX without
    // enabling its register state, and ggml's AMX kernels then die with SIGILL. AVX-512 is
    // off too (slower here); NAPI_LLAMA_AVX512=1 keeps it.
    // CFLAGS/CXXFLAGS (not CMAKE_C_FLAGS) so the cmake crate keeps its own -fPIC and -m64.
    const off = ['-mno-amx-tile', '-mno-amx-int8', '-mno-amx-bf16']
    if (env.NAPI_LLAMA_AVX512 !== '1') off.push('-mno-avx512f')
    env.CFLAGS = [env.CFLAGS, ...off].filter(Boolean).join(' ')
    env.CXXFLAGS = [env.CXXFLAGS, ...off].filter(Boolean).join(' ')
  }
  return env
}

function targetDir(env = process.env) {
  return env.CARGO_TARGET_DIR ? path.resolve(env.CARGO_TARGET_DIR) : path.join(ROOT, 'target')
}

module.exports = { ROOT, targetTriple, buildEnv, targetDir }
