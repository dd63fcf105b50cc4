'use strict'
// The one definition of how the native addon is compiled, shared by the install build,
// `npm test` (cargo test) and the benchmarks, so that all of them reuse one llama.cpp build
// in target/ instead of compiling it again (a change of flags means a ~5 minute rebuild).

const fs = require('node:fs')
const path = require('node:path')

const ROOT = path.join(__dirname, '..')

function targetTriple() {
  const entry = require('../native-loader').platform()
  if (!entry) throw new Error(`napi-llama has no build recipe for ${process.platform}-${process.arch}`)
  return entry.triple
}

/**
 * The GCC AMX fix header, copied into the cargo target directory: the path ends up in CFLAGS,
 * which are part of llama.cpp's build key, so it must not depend on where the checkout is (a
 * target directory shared by several checkouts keeps one llama.cpp build). CFLAGS are split on
 * whitespace, so a target path with spaces falls back to the temp directory.
 */
function amxFixHeader(env) {
  return amxFixHeaderAt(path.join(targetDir(env), 'napi-llama'))
}

function amxFixHeaderAt(dir) {
  return copyBesideBuild('gcc-amx-loadconfig-fix.h', dir)
}

/**
 * Copies `file` (a path under scripts/) into `dir`, a folder beside a build, when it is missing
 * or differs; returns the copy's path. Compiler flags name the copy, so they do not depend on
 * where the checkout is. Flags are split on whitespace: a folder with spaces becomes the temp
 * directory's.
 */
function copyBesideBuild(file, dir) {
  if (/\s/.test(dir)) dir = path.join(require('node:os').tmpdir(), 'napi-llama')
  const dest = path.join(dir, file)
  const text = fs.readFileSync(path.join(__dirname, file))
  if (!fs.existsSync(dest) || !fs.readFileSync(dest).equals(text)) {
    fs.mkdirSync(path.dirname(dest), { recursive: true })
    fs.writeFileSync(dest, text)
  }
  return dest
}

/** CPU feature flags of this machine (Linux /proc/cpuinfo), or null where unknown. */
function cpuFlags() {
  try {
    const info = fs.readFileSync('/proc/cpuinfo', 'utf8')
    const line = info.split('\n').find((l) => l.startsWith('flags'))
    return line ? new Set(line.split(':')[1].trim().split(/\s+/)) : null
  } catch {
    return null
  }
}

const AVX512 = ['avx512f', 'avx512cd', 'avx512bw', 'avx512dq', 'avx512vl']

/**
 * ggml's x86-64 CPU variants above the portable AVX2 baseline, best first: what each needs in
 * /proc/cpuinfo and the ggml options that build it (the names are ggml's own variant names).
 * `auto` takes the first whose flags the CPU has.
 */
const CPU_VARIANTS = [
  {
    name: 'sapphirerapids',
    label: 'AVX-512 VNNI/VBMI/BF16 + AMX',
    needs: [...AVX512, 'avx512vbmi', 'avx512_vnni', 'avx512_bf16', 'amx_tile', 'amx_int8'],
    ggml: ['GGML_AVX512', 'GGML_AVX512_VBMI', 'GGML_AVX512_VNNI', 'GGML_AVX512_BF16', 'GGML_AMX_TILE', 'GGML_AMX_INT8'],
  },
  { name: 'zen4', label: 'AVX-512 VNNI/VBMI/BF16', needs: [...AVX512, 'avx512vbmi', 'avx512_vnni', 'avx512_bf16'], ggml: ['GGML_AVX512', 'GGML_AVX512_VBMI', 'GGML_AVX512_VNNI', 'GGML_AVX512_BF16'] },
  { name: 'icelake', label: 'AVX-512 VNNI/VBMI', needs: [...AVX512, 'avx512vbmi', 'avx512_vnni'], ggml: ['GGML_AVX512', 'GGML_AVX512_VBMI', 'GGML_AVX512_VNNI'] },
  { name: 'skylakex', label: 'AVX-512', needs: AVX512, ggml: ['GGML_AVX512'] },
]

/** The variant `auto` builds for a CPU with these /proc/cpuinfo flags (null: the AVX2 baseline). */
function cpuVariant(flags) {
  if (!flags) return null
  return CPU_VARIANTS.find((v) => v.needs.every((f) => flags.has(f))) || null
}

function addFlags(env, flags) {
  env.CFLAGS = [env.CFLAGS, ...flags].filter(Boolean).join(' ')
  env.CXXFLAGS = [env.CXXFLAGS, ...flags].filter(Boolean).join(' ')
}

/**
 * Which llama.cpp CPU build to make. NAPI_LLAMA_CPU:
 *   auto (default)  this CPU's best ggml kernels, chosen from its feature flags (CPU_VARIANTS):
 *                   with AMX, ggml's "sapphirerapids" variant (AVX-512 VNNI/BF16 + AMX int8, the
 *                   one node-llama-cpp loads there); with AVX-512, the matching AVX-512 variant;
 *                   elsewhere ggml's AVX2 build. Measured faster than -march=native (docs/build.md).
 *   portable        ggml's AVX2/FMA/F16C build for any x86-64-v3 CPU (the opt-out).
 *   native          -C target-cpu=native (llama.cpp then compiles with -march=native).
 */
function cpuBuild(env) {
  if (env.NAPI_LLAMA_NATIVE === '1' || env.NAPI_LLAMA_NATIVE === 'true') return 'native'
  const v = (env.NAPI_LLAMA_CPU || 'auto').toLowerCase()
  if (!['auto', 'portable', 'native'].includes(v)) {
    throw new Error(`NAPI_LLAMA_CPU must be auto, portable or native, got '${env.NAPI_LLAMA_CPU}'`)
  }
  return v
}

/** Environment for cargo: the one place build flags are decided. */
function buildEnv(base = process.env) {
  const env = { ...base }
  delete env.NAPI_LLAMA_CPU_VARIANT // decided below, never inherited
  if (process.arch !== 'x64') return env
  const build = cpuBuild(env)
  if (build === 'native') {
    env.RUSTFLAGS = [env.RUSTFLAGS, '-C target-cpu=native'].filter(Boolean).join(' ')
    // -march=native turns AMX on where the CPU has it: GCC 12 then needs the tile-config fix.
    addFlags(env, ['-include', amxFixHeader(env)])
  } else if (build === 'auto') {
    const variant = cpuVariant(cpuFlags())
    if (variant) {
      for (const k of variant.ggml) env[k] = 'ON'
      if (variant.ggml.includes('GGML_AMX_INT8')) addFlags(env, ['-include', amxFixHeader(env)])
      env.NAPI_LLAMA_CPU_VARIANT = variant.name
    }
  }
  // The whole choice in one GGML_* variable: llama-cpp-sys-2 reruns its build script when it
  // changes, and records it in llama.cpp's CMake cache, where forgetStaleLlamaBuilds reads it.
  env.GGML_NAPI_LLAMA_BUILD = [build, env.NAPI_LLAMA_CPU_VARIANT, env.CFLAGS, env.RUSTFLAGS].filter(Boolean).join(' ').replace(/\s+/g, '_')
  return env
}

/**
 * llama-cpp-sys-2 configures llama.cpp's CMake build only when its target directory has none
 * (later builds skip the configure step), so a changed CPU build would silently keep the old
 * kernels. Before a cargo build: every llama.cpp build in the target directory configured for
 * another build key (GGML_NAPI_LLAMA_BUILD) is removed, so that cargo configures and compiles
 * llama.cpp again.
 */
function forgetStaleLlamaBuilds(env) {
  if (process.arch !== 'x64') return
  const buildRoot = path.join(targetDir(env), targetTriple(), 'release', 'build')
  let dirs = []
  try {
    dirs = fs.readdirSync(buildRoot).filter((d) => d.startsWith('llama-cpp-sys-2-'))
  } catch {
    return
  }
  for (const dir of dirs) {
    let cache
    try {
      cache = fs.readFileSync(path.join(buildRoot, dir, 'out', 'build', 'CMakeCache.txt'), 'utf8')
    } catch {
      continue
    }
    // llama-cpp-sys-2 hands every GGML_* variable to CMake, so the cache records the build key
    // it was configured with. Comparing keys, not the ggml options themselves, leaves alone
    // what llama-cpp-sys-2 adds on its own (GGML_NATIVE from a target-cpu in cargo's config).
    const m = /^GGML_NAPI_LLAMA_BUILD:[A-Z]+=(.*)$/m.exec(cache)
    const configured = m ? m[1] : null
    if (configured === env.GGML_NAPI_LLAMA_BUILD) continue
    process.stderr.write(`[napi-llama] llama.cpp was configured for another CPU build (${configured || 'unknown'}, now ${env.GGML_NAPI_LLAMA_BUILD}): rebuilding it\n`)
    // The build script's output and its fingerprint go too, so that cargo runs it again.
    fs.rmSync(path.join(buildRoot, dir), { recursive: true, force: true })
    fs.rmSync(path.join(buildRoot, '..', '.fingerprint', dir), { recursive: true, force: true })
  }
}

/** A one-line description of the CPU build, for logs. */
function describeBuild(env = buildEnv()) {
  const build = cpuBuild(env)
  if (build === 'auto') {
    const variant = CPU_VARIANTS.find((v) => v.name === env.NAPI_LLAMA_CPU_VARIANT)
    return variant ? `auto: ${variant.label} (${variant.name})` : 'auto: AVX2'
  }
  return build
}

/** The cache outside the checkout for one-time builds (NAPI_LLAMA_CACHE_DIR moves it). */
function cacheRoot() {
  return process.env.NAPI_LLAMA_CACHE_DIR || path.join(require('node:os').homedir(), '.cache', 'napi-llama')
}

function targetDir(env = process.env) {
  return env.CARGO_TARGET_DIR ? path.resolve(env.CARGO_TARGET_DIR) : path.join(ROOT, 'target')
}

/** The file name cargo gives the addon's shared library on this platform. */
function libraryName() {
  if (process.platform === 'darwin') return 'libnapi_llama.dylib'
  if (process.platform === 'win32') return 'napi_llama.dll'
  return 'libnapi_llama.so'
}

/** The pinned llama-cpp-sys-2 version (Cargo.lock): it names the llama.cpp build. */
function llamaCppSysVersion() {
  const lock = fs.readFileSync(path.join(ROOT, 'Cargo.lock'), 'utf8')
  const m = /name = "llama-cpp-sys-2"\nversion = "([^"]+)"/.exec(lock)
  if (!m) throw new Error('llama-cpp-sys-2 is not in Cargo.lock')
  return m[1]
}

module.exports = { amxFixHeaderAt, copyBesideBuild, llamaCppSysVersion, cacheRoot, ROOT, targetTriple, buildEnv, forgetStaleLlamaBuilds, describeBuild, targetDir, libraryName, cpuVariant, CPU_VARIANTS }
