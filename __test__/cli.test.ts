// The command line (`npx napi-llama`), run as a user runs it: a separate Node process, through
// bin/napi-llama.js, on the real SmolLM2. `chat` is also driven through a pseudo-terminal (by
// Python's standard pty module, __test__/pty-driver.py), in Persian. `pull` downloads from an
// HTTP server this suite starts on 127.0.0.1. Nothing here depends on the machine's speed: a
// slow reply is made slow by the engine's fault injection, not by racing it.
import { spawn } from 'node:child_process'
import * as crypto from 'node:crypto'
import * as fs from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import * as os from 'node:os'
import * as path from 'node:path'
import { Engine } from '../index'
import { GGUFWriter, GGUF_TYPE, readGGUFHeader } from '../scripts/gguf'
import { CATALOG } from '../scripts/fetch-model'
import { GEMMA3, SMOLLM2 } from './helpers'

const ROOT = path.join(__dirname, '..')
const BIN = path.join(ROOT, 'bin', 'napi-llama.js')
const PTY_DRIVER = path.join(__dirname, 'pty-driver.py')
const MODELS_DIR = path.dirname(SMOLLM2)
const PACKAGE_VERSION = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version

/** What the tests' engine and the CLI's chat engine share, so greedy replies are the same. */
const CHAT_FLAGS = ['--temperature', '0', '--threads', '1', '--context', '1024']
const CHAT_ENGINE = { modelPath: SMOLLM2, threads: 1, contextSize: 1024, parallel: 1 }

interface Run {
  status: number | null
  stdout: string
  stderr: string
}

let scratch: string

beforeAll(() => {
  scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'napi-llama-cli-'))
})

afterAll(() => {
  fs.rmSync(scratch, { recursive: true, force: true })
})

/** An empty folder of the scratch area. */
function folder(name: string): string {
  const dir = path.join(scratch, name)
  fs.mkdirSync(dir, { recursive: true })
  return dir
}

interface CliOptions {
  env?: NodeJS.ProcessEnv
  input?: string
  /** Once stdout or stderr matches, the CLI gets SIGINT (as Ctrl-C in a shell sends). */
  interruptWhen?: { stdout?: RegExp; stderr?: RegExp }
}

/** Runs the CLI to its end (asynchronously: a server in this process may have to answer it). */
function cli(args: string[], { env = {}, input, interruptWhen }: CliOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, ...args], {
      cwd: ROOT,
      env: { ...process.env, NAPI_LLAMA_MODELS_DIR: MODELS_DIR, ...env },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    let stdout = ''
    let stderr = ''
    let interrupted = false
    const check = () => {
      if (interrupted || !interruptWhen) return
      if (interruptWhen.stdout?.test(stdout) || interruptWhen.stderr?.test(stderr)) {
        interrupted = true
        child.kill('SIGINT')
      }
    }
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d
      check()
    })
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d
      check()
    })
    child.on('error', reject)
    child.on('close', (status) => resolve({ status, stdout, stderr }))
    child.stdin.end(input ?? '')
  })
}

type PtyStep = { expect: string; timeout?: number } | { send: string }

/** The prompt at the start of a line, after readline's cursor movements. */
const PROMPT_LINE = '\\n(?:\\x1b\\[[0-9;]*[A-Za-z])*>>> '
/** Long enough for a slow machine, short enough to fail before Jest's own timeout with a transcript. */
const PTY_STEP_SECONDS = 60

interface PtyRun {
  status: number | null
  ok: boolean
  failed: { step: number; expect: string } | null
  /** What the terminal showed, escape sequences and carriage returns removed. */
  screen: string
  raw: string
}

/** Runs the CLI in a pseudo-terminal, playing `steps` as a person at the keyboard. */
function ptyCli(args: string[], steps: PtyStep[], env: NodeJS.ProcessEnv = {}): Promise<PtyRun> {
  const spec = {
    argv: [process.execPath, BIN, ...args],
    env: { NAPI_LLAMA_MODELS_DIR: MODELS_DIR, TERM: 'xterm-256color', LANG: 'C.UTF-8', ...env },
    steps: steps.map((step) => ('expect' in step ? { timeout: PTY_STEP_SECONDS, ...step } : step)),
  }
  return new Promise((resolve, reject) => {
    const child = spawn('python3', [PTY_DRIVER, JSON.stringify(spec)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d))
    child.on('error', reject)
    child.on('close', () => {
      const r = JSON.parse(out)
      const raw = Buffer.from(r.transcript, 'base64').toString('utf8')
      // eslint-disable-next-line no-control-regex
      const screen = raw.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '')
      resolve({ status: r.status, ok: r.ok, failed: r.failed, screen, raw })
    })
  })
}

/** Every step of the pty script happened; else the failure shows what the terminal showed. */
function expectPlayed(run: PtyRun): void {
  if (run.failed) throw new Error(`step ${run.failed.step} (${run.failed.expect}) never happened; the terminal showed:\n${JSON.stringify(run.raw)}`)
}

/**
 * The error contract: the error is one line `napi-llama: CODE: message`, the last thing on
 * stderr (only a download's progress may come before it), with no stack; stdout is empty.
 */
function expectErrorLine(run: Run, code: string, status: number, { afterProgress = false } = {}): string {
  const lines = run.stderr.split('\n')
  expect(lines.pop()).toBe('')
  const last = lines[lines.length - 1] ?? ''
  expect(last).toMatch(new RegExp(`^napi-llama: ${code}: \\S`))
  const before = lines.slice(0, -1)
  if (afterProgress) for (const line of before) expect(line).toMatch(/^\S+\.gguf: [\d.]+ \S+( of [\d.]+ \S+ \(\d+%\))?$/)
  else expect(before).toEqual([])
  expect(run.stdout).toBe('')
  expect(run.status).toBe(status)
  return last
}

const sha256 = (data: Buffer) => crypto.createHash('sha256').update(data).digest('hex')

/** A small valid GGUF file (metadata only), padded to `bytes` so a download has several chunks. */
function tinyGGUF(bytes: number): Buffer {
  const w = new GGUFWriter()
  w.add('general.architecture', GGUF_TYPE.STRING, 'llama')
  w.add('general.name', GGUF_TYPE.STRING, 'tiny')
  w.add('general.padding', GGUF_TYPE.STRING, 'x'.repeat(bytes))
  return w.header()
}

describe('help and version', () => {
  test('--help lists every command; each command has its own --help; --version is the package version', async () => {
    const top = await cli(['--help'])
    expect(top.status).toBe(0)
    for (const command of ['pull', 'chat', 'inspect', 'bench']) expect(top.stdout).toContain(`  ${command} <`)
    expect(top.stdout).toContain(MODELS_DIR)
    expect((await cli([])).stdout).toBe(top.stdout)
    const version = await cli(['--version'])
    expect(version).toEqual({ status: 0, stdout: `${PACKAGE_VERSION}\n`, stderr: '' })
    const chat = await cli(['chat', '--help'])
    expect(chat.status).toBe(0)
    for (const option of ['--system TEXT', '--temperature T', '--max-tokens N', '--threads N', '--context N', '--help']) expect(chat.stdout).toContain(option)
    expect((await cli(['help', 'chat'])).stdout).toBe(chat.stdout)
    expect((await cli(['pull', '--help'])).stdout).toContain('--sha256 HEX')
    expect((await cli(['inspect', '-h'])).stdout).toContain('--template')
    expect((await cli(['bench', '--help'])).stdout).toContain('--prompt-tokens N')
  })

  test('help, inspect and pull of a present model work without the native addon', async () => {
    const noAddon = { NAPI_RS_NATIVE_LIBRARY_PATH: path.join(scratch, 'no-such-addon.node') }
    expect((await cli(['chat', '--help'], { env: noAddon })).status).toBe(0)
    const inspected = await cli(['inspect', 'smollm2', '--json'], { env: noAddon })
    expect(inspected.status).toBe(0)
    expect(JSON.parse(inspected.stdout).architecture).toBe('llama')
    const pulled = await cli(['pull', 'smollm2'], { env: noAddon })
    expect(pulled.stdout).toBe(`${CATALOG.smollm2.sha256}  ${SMOLLM2}\n`)
  })
})

describe('errors are one line with a code, never a stack', () => {
  test('a malformed command line is USAGE, exit 2', async () => {
    expect(expectErrorLine(await cli(['frobnicate']), 'USAGE', 2)).toContain('unknown command "frobnicate"')
    expect(expectErrorLine(await cli(['--frobnicate']), 'USAGE', 2)).toContain('--frobnicate')
    expect(expectErrorLine(await cli(['chat']), 'USAGE', 2)).toContain('missing <model>')
    expect(expectErrorLine(await cli(['chat', 'smollm2', '--bogus']), 'USAGE', 2)).toContain('--bogus')
    expect(expectErrorLine(await cli(['chat', 'smollm2', '--temperature', 'warm']), 'USAGE', 2)).toContain('--temperature warm is not a number')
    expect(expectErrorLine(await cli(['bench', 'smollm2', '--reps', '1.5']), 'USAGE', 2)).toContain('whole number')
    expect(expectErrorLine(await cli(['inspect', 'a.gguf', 'b.gguf']), 'USAGE', 2)).toContain('unexpected argument "b.gguf"')
  })

  test('a missing model is MODEL_NOT_FOUND; a model name not pulled yet says how to pull it', async () => {
    const missing = path.join(scratch, 'missing.gguf')
    expect(expectErrorLine(await cli(['chat', missing]), 'MODEL_NOT_FOUND', 1)).toContain(missing)
    expect(expectErrorLine(await cli(['inspect', missing]), 'MODEL_NOT_FOUND', 1)).toContain(missing)
    const empty = folder('no-models')
    const line = expectErrorLine(await cli(['bench', 'gemma3'], { env: { NAPI_LLAMA_MODELS_DIR: empty } }), 'MODEL_NOT_FOUND', 1)
    expect(line).toContain('napi-llama pull gemma3')
  })

  test("the engine's own codes come through: a file that fails to load, an option out of range", async () => {
    const bad = path.join(scratch, 'not-a-model.gguf')
    fs.writeFileSync(bad, 'this is not a model, just some text long enough to be read as a header')
    expectErrorLine(await cli(['chat', bad]), 'MODEL_LOAD_FAILED', 1)
    expectErrorLine(await cli(['bench', bad, '--reps', '1']), 'MODEL_LOAD_FAILED', 1)
    expect(expectErrorLine(await cli(['inspect', bad]), 'INVALID_MODEL', 1)).toContain('not a GGUF file')
    // Checked before the model loads, with the engine's own rule.
    expect(expectErrorLine(await cli(['chat', 'smollm2', '--temperature=-1']), 'INVALID_ARGUMENT', 1)).toContain('temperature')
    expect(expectErrorLine(await cli(['chat', 'smollm2', '--context', '100000000']), 'INVALID_ARGUMENT', 1)).toContain('contextSize')
  })
})

describe('inspect', () => {
  test("reads SmolLM2's header without loading it, and agrees with what the engine reports once loaded", async () => {
    const run = await cli(['inspect', 'smollm2', '--json'])
    expect(run.status).toBe(0)
    const facts = JSON.parse(run.stdout)
    expect(facts).toMatchObject({
      file: SMOLLM2,
      architecture: 'llama',
      quantization: 'Q4_1',
      layers: 30,
      heads: 9,
      kvHeads: 3,
      keyLength: 64,
      valueLength: 64,
      tokenizer: 'gpt2',
      // Grouped-query attention: 30 layers × 3 KV heads × 64 × (K + V) × 2 bytes.
      kvBytesPerToken: 30 * 3 * 64 * 2 * 2,
    })
    expect(facts.chatTemplate).toContain('<|im_start|>')
    expect(facts.metadata['tokenizer.ggml.tokens']).toEqual({ type: 'array', length: facts.vocabSize })

    const engine = await Engine.load({ modelPath: SMOLLM2, threads: 1, contextSize: 1000, parallel: 2 })
    try {
      const info = engine.info
      // The engine pads each sequence's context to 256 cells: 1000 → 1024, for each of 2 slots.
      expect(info.kvCacheBytes).toBe(facts.kvBytesPerToken * 1024 * 2)
      expect(facts.parameters).toBe(info.parameters)
      expect(facts.trainedContextLength).toBe(info.trainedContextSize)
      expect(facts.vocabSize).toBe(info.vocabSize)
      expect(facts.architecture).toBe(info.architecture)
    } finally {
      await engine.unload()
    }

    const advice = facts.recommended
    expect(advice.threads).toBe(os.availableParallelism())
    expect(advice.machine.cores).toBe(os.availableParallelism())
    expect(advice.parallel).toBeGreaterThanOrEqual(1)
    expect(advice.contextSize).toBeLessThanOrEqual(facts.trainedContextLength)
    expect(advice.kvCacheBytes).toBe(facts.kvBytesPerToken * Math.ceil(advice.contextSize / 256) * 256 * advice.parallel)
  })

  test('the report shortens the chat template; --template prints it exactly', async () => {
    const report = await cli(['inspect', SMOLLM2])
    expect(report.status).toBe(0)
    for (const label of ['architecture    llama', 'quantization    Q4_1', 'KV cache        23040 bytes per token', 'recommended on this machine', 'threads', 'parallel', 'contextSize']) {
      expect(report.stdout).toContain(label)
    }
    expect(report.stdout).toMatch(/chat template +\{%.*… \(\d+ characters; --template prints it\)/)
    const template = await cli(['inspect', SMOLLM2, '--template'])
    expect(template.stdout).toBe(readGGUFHeader(SMOLLM2).kv['tokenizer.chat_template'])
    const all = await cli(['inspect', SMOLLM2, '--metadata'])
    expect(all.stdout).toMatch(/tokenizer\.ggml\.tokens +\[.*, … 49152 items\]/)
  })

  test('KV bytes per token: Gemma 3 (one KV head of 256, sliding-window layers in full), per-layer head counts, and a recurrent model', async () => {
    const gemma = JSON.parse((await cli(['inspect', GEMMA3, '--json'])).stdout)
    // The engine's own estimate for Gemma 3 is 144 MiB at 2 × 4096 cells (src/engine/tests).
    expect(gemma.kvBytesPerToken * 4096 * 2).toBe(144 * 2 ** 20)

    const perLayer = path.join(scratch, 'per-layer.gguf')
    const w = new GGUFWriter()
    w.add('general.architecture', GGUF_TYPE.STRING, 'deci')
    w.add('deci.block_count', GGUF_TYPE.UINT32, 3)
    w.add('deci.embedding_length', GGUF_TYPE.UINT32, 64)
    w.addArray('deci.attention.head_count', GGUF_TYPE.INT32, [4, 0, 4])
    // A layer without attention keeps no cache.
    w.addArray('deci.attention.head_count_kv', GGUF_TYPE.INT32, [2, 0, 1])
    w.write(perLayer)
    const deci = JSON.parse((await cli(['inspect', perLayer, '--json'])).stdout)
    expect(deci.kvHeads).toEqual([2, 0, 1])
    expect(deci.kvBytesPerToken).toBe((2 + 0 + 1) * (16 + 16) * 2)

    const recurrent = path.join(scratch, 'mamba.gguf')
    const m = new GGUFWriter()
    m.add('general.architecture', GGUF_TYPE.STRING, 'mamba')
    m.add('mamba.block_count', GGUF_TYPE.UINT32, 2)
    m.add('mamba.embedding_length', GGUF_TYPE.UINT32, 64)
    m.add('mamba.ssm.state_size', GGUF_TYPE.UINT32, 16)
    m.write(recurrent)
    const mamba = JSON.parse((await cli(['inspect', recurrent, '--json'])).stdout)
    expect(mamba.kvBytesPerToken).toBeNull()
    expect(mamba.kvCacheNote).toContain('recurrent')
    expect((await cli(['inspect', recurrent])).stdout).toMatch(/KV cache +n\/a: a recurrent/)
  })
})

describe('pull', () => {
  test('a model name already in the models folder is not downloaded again', async () => {
    const dir = folder('pulled')
    fs.symlinkSync(SMOLLM2, path.join(dir, path.basename(SMOLLM2)))
    // A python3 that records being run: pip must not be asked for anything.
    const fakeBin = folder('fake-bin')
    const marker = path.join(scratch, 'python-ran')
    fs.writeFileSync(path.join(fakeBin, 'python3'), `#!/bin/sh\ntouch '${marker}'\nexit 1\n`, { mode: 0o755 })
    const env = { NAPI_LLAMA_MODELS_DIR: dir, PATH: `${fakeBin}${path.delimiter}${process.env.PATH}` }
    const run = await cli(['pull', 'smollm2'], { env })
    expect(run.status).toBe(0)
    expect(run.stdout).toBe(`${CATALOG.smollm2.sha256}  ${path.join(dir, path.basename(SMOLLM2))}\n`)
    expect(run.stderr).toContain('already in')
    const json = await cli(['pull', 'smollm2', '--json'], { env })
    expect(JSON.parse(json.stdout)).toEqual({ path: path.join(dir, path.basename(SMOLLM2)), sha256: CATALOG.smollm2.sha256, bytes: CATALOG.smollm2.size, cached: true })
    expect(fs.existsSync(marker)).toBe(false)
  })

  describe('from a URL', () => {
    const body = tinyGGUF(3 << 20)
    let server: http.Server
    let base: string
    let requests = 0

    beforeAll(async () => {
      server = http.createServer((req, res) => {
        requests++
        if (req.url === '/models/tiny.gguf' || req.url === '/models/copy.gguf') {
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length })
          // In pieces, as a real download arrives.
          const step = 256 << 10
          for (let at = 0; at < body.length; at += step) res.write(body.subarray(at, at + step))
          res.end()
        } else if (req.url === '/models/stalls.gguf') {
          // Half the file, then nothing: the download is in flight until the client gives up.
          res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length })
          res.write(body.subarray(0, body.length >> 1))
        } else if (req.url === '/models/page.gguf') {
          res.writeHead(200, { 'content-type': 'text/html' })
          res.end('<html>not a model</html>')
        } else {
          res.writeHead(404)
          res.end()
        }
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/models`
    })

    afterAll(async () => {
      server.closeAllConnections()
      await new Promise((resolve) => server.close(resolve))
    })

    test('downloads with progress, checks the sha256, writes the file whole, and keeps it for next time', async () => {
      const dir = folder('from-url')
      const env = { NAPI_LLAMA_MODELS_DIR: dir }
      const run = await cli(['pull', `${base}/tiny.gguf`, '--sha256', sha256(body).toUpperCase()], { env })
      expect(run.status).toBe(0)
      const file = path.join(dir, 'tiny.gguf')
      expect(run.stdout).toBe(`${sha256(body)}  ${file}\n`)
      expect(run.stderr).toMatch(/tiny\.gguf: 3\.0 MiB of 3\.0 MiB \(100%\)\n/)
      expect(fs.readFileSync(file).equals(body)).toBe(true)
      expect(fs.readdirSync(dir)).toEqual(['tiny.gguf'])

      const before = requests
      const again = await cli(['pull', `${base}/tiny.gguf`, '--json'], { env })
      expect(JSON.parse(again.stdout)).toEqual({ path: file, sha256: sha256(body), bytes: body.length, cached: true })
      expect(requests).toBe(before)
      // The downloaded file is a model like any other for the other commands.
      expect(JSON.parse((await cli(['inspect', file, '--json'])).stdout).name).toBe('tiny')
    })

    test('a wrong sha256, a missing file or a page that is not GGUF fails with its code and leaves no file', async () => {
      const dir = folder('refused')
      const env = { NAPI_LLAMA_MODELS_DIR: dir }
      const wrong = 'ab'.repeat(32)
      const line = expectErrorLine(await cli(['pull', `${base}/copy.gguf`, '--sha256', wrong], { env }), 'CHECKSUM_MISMATCH', 1, { afterProgress: true })
      expect(line).toContain(sha256(body))
      expect(line).toContain(wrong)
      expectErrorLine(await cli(['pull', `${base}/absent.gguf`], { env }), 'DOWNLOAD_FAILED', 1)
      expectErrorLine(await cli(['pull', `${base}/page.gguf`], { env }), 'INVALID_MODEL', 1, { afterProgress: true })
      expect(fs.readdirSync(dir)).toEqual([])
    })

    test('Ctrl-C stops a download in flight: ABORTED, exit 130, and nothing left in the models folder', async () => {
      const dir = folder('interrupted')
      const run = await cli(['pull', `${base}/stalls.gguf`], { env: { NAPI_LLAMA_MODELS_DIR: dir }, interruptWhen: { stderr: /stalls\.gguf: .*\(50%\)/ } })
      expect(expectErrorLine(run, 'ABORTED', 130, { afterProgress: true })).toContain('stalls.gguf')
      expect(fs.readdirSync(dir)).toEqual([])
    })

    test('plain http is refused off this machine; a malformed sha256 is refused before any download', async () => {
      const before = requests
      expect(expectErrorLine(await cli(['pull', 'http://example.com/model.gguf']), 'INVALID_ARGUMENT', 1)).toContain('https://')
      expectErrorLine(await cli(['pull', `${base}/tiny.gguf`, '--sha256', 'abc']), 'INVALID_ARGUMENT', 1)
      expect(expectErrorLine(await cli(['pull', 'smollm2', '--sha256', sha256(body)]), 'USAGE', 2)).toContain('pinned')
      expect(expectErrorLine(await cli(['pull', 'llama-70b']), 'USAGE', 2)).toContain('smollm2, gemma3, minilm')
      expect(requests).toBe(before)
    })
  })
})

describe('chat', () => {
  let engine: Engine

  beforeAll(async () => {
    engine = await Engine.load(CHAT_ENGINE)
  })

  afterAll(async () => {
    await engine?.unload()
  })

  test('in a terminal: a Persian question is echoed intact and the Persian reply streams whole; Ctrl-D leaves cleanly', async () => {
    const question = 'این جمله را تکرار کن: سلام دنیا'
    // cachePrompt off: evaluated whole, as the CLI's fresh engine evaluates it.
    const expected = await engine.generate([{ role: 'user', content: question }], { temperature: 0, maxTokens: 32, cachePrompt: false })
    expect(expected.text).toMatch(/[\u0600-\u06FF]/)
    const run = await ptyCli(
      ['chat', 'smollm2', ...CHAT_FLAGS, '--max-tokens', '32'],
      [{ expect: '>>> ' }, { send: `${question}\r` }, { expect: PROMPT_LINE }, { send: '\x04' }],
    )
    expectPlayed(run)
    expect(run.status).toBe(0)
    expect(run.screen).toContain(`>>> ${question}\n`)
    expect(run.screen).toContain(`${question}\n${expected.text.trimEnd()}\n`)
    expect(run.screen).not.toContain('\uFFFD')
    expect(run.raw).not.toContain('napi-llama: ')
  })

  test('in a terminal: Ctrl-C stops a reply in flight, keys typed meanwhile are not echoed, and a second Ctrl-C leaves', async () => {
    // Every decode step takes 100 ms more: the reply is still streaming when Ctrl-C comes.
    const run = await ptyCli(
      ['chat', 'smollm2', ...CHAT_FLAGS, '--max-tokens', '1000'],
      [
        { expect: '>>> ' },
        { send: 'Write a long story about a dragon.\r' },
        { expect: 'dragon\\.\\r*\\n[^\\r\\n]+' },
        { send: 'typed meanwhile' },
        { send: '\x03' },
        { expect: '\\(stopped\\)' },
        { expect: PROMPT_LINE },
        { send: '\x03' },
      ],
      { NAPI_LLAMA_FAULTS: 'step:100' },
    )
    expectPlayed(run)
    expect(run.status).toBe(0)
    expect(run.screen).not.toContain('typed meanwhile')
    expect(run.screen).toMatch(/dragon\.\n[\s\S]+\n\(stopped\)\n>>> \n$/)
  })

  test('from a pipe: one reply per line, /reset keeps only the system message, /exit stops reading', async () => {
    const system = 'Answer in one short sentence.'
    const first = await engine.generate([{ role: 'system', content: system }, { role: 'user', content: 'Hi' }], { temperature: 0, maxTokens: 24, cachePrompt: false })
    const afterReset = [{ role: 'system' as const, content: system }, { role: 'user' as const, content: 'What is 2+2?' }]
    const run = await cli(['chat', 'smollm2', ...CHAT_FLAGS, '--max-tokens', '24', '--system', system, '--stats'], {
      input: 'Hi\n\n/reset\n/unknown\nWhat is 2+2?\n/exit\nnever read\n',
    })
    expect(run.status).toBe(0)
    expect(run.stdout.startsWith(first.text.endsWith('\n') ? first.text : `${first.text}\n`)).toBe(true)
    expect(run.stderr).toContain('(new conversation)')
    expect(run.stderr).toContain('unknown command /unknown')
    const stats = [...run.stderr.matchAll(/\((\d+) tokens, [\d.]+ tokens\/s; prompt (\d+) tokens, \d+ cached\)/g)]
    expect(stats).toHaveLength(2)
    expect(Number(stats[0][2])).toBe(first.promptTokens)
    // After /reset the prompt is the system message and the new question alone.
    expect(Number(stats[1][2])).toBe(engine.countTokens(afterReset))
  })
})

describe('chat from a pipe, interrupted', () => {
  test('SIGINT stops the reply in flight and the chat goes on with the next line', async () => {
    // Every decode step takes 100 ms more: the first reply is still streaming when SIGINT comes.
    const run = await cli(['chat', 'smollm2', ...CHAT_FLAGS, '--max-tokens', '40', '--stats'], {
      interruptWhen: { stdout: /\S/ },
      env: { NAPI_LLAMA_FAULTS: 'step:100' },
      input: 'Write a long story about a dragon.\nSay OK.\n/exit\n',
    })
    expect(run.status).toBe(0)
    expect(run.stderr).toContain('(stopped)\n')
    // The second message was answered in full: its stats line follows the stop.
    expect(run.stderr).toMatch(/\(stopped\)\n\(\d+ tokens, [\d.]+ tokens\/s; prompt \d+ tokens, \d+ cached\)\n$/)
  })
})

describe('bench', () => {
  test('measures prompt processing and generation: the median of each run, as JSON and as a table', async () => {
    const run = await cli(['bench', 'smollm2', '--threads', '1', '--prompt-tokens', '32', '--gen-tokens', '8', '--reps', '3', '--json'])
    expect(run.status).toBe(0)
    const result = JSON.parse(run.stdout)
    expect(result.threads).toBe(1)
    expect(result.model).toMatchObject({ path: SMOLLM2, architecture: 'llama' })
    for (const measured of [result.pp, result.tg]) {
      expect(measured.runs).toHaveLength(3)
      for (const speed of measured.runs) expect(speed).toBeGreaterThan(0)
      expect(measured.tokensPerSecond).toBe([...measured.runs].sort((a: number, b: number) => a - b)[1])
    }
    expect(result.pp.tokens).toBe(32)
    for (const n of result.tg.generated) expect(n).toBeLessThanOrEqual(8)

    const table = await cli(['bench', SMOLLM2, '--threads', '1', '--prompt-tokens', '16', '--gen-tokens', '4', '--reps', '1'])
    expect(table.status).toBe(0)
    expect(table.stdout).toMatch(/^pp16 +[\d.]+ tokens\/s +\(median of 1: [\d.]+\)$/m)
    expect(table.stdout).toMatch(/^tg4 +[\d.]+ tokens\/s +\(median of 1: [\d.]+\)/m)
    expect(table.stdout).toContain('1 thread\n')
  })

  test('the prompt costs exactly --prompt-tokens, BOS included (Gemma 3 adds one)', async () => {
    const run = await cli(['bench', 'gemma3', '--threads', '1', '--prompt-tokens', '32', '--gen-tokens', '2', '--reps', '1', '--json'])
    expect(run.status).toBe(0)
    expect(JSON.parse(run.stdout).pp.tokens).toBe(32)
  })
})
