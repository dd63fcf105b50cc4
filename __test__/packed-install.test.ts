// Installs napi-llama the way a user does: the packed main and platform packages into a fresh
// TypeScript project, with install scripts off. Nothing may compile, the consumer's code must
// type-check under --strict against the public types, and generate() must answer from the
// prebuilt addon, whose libraries and CPU backend load from the platform package's folder.
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { SMOLLM2 } from './helpers'
import { releasePackages } from './release-packages'

const ROOT = path.join(__dirname, '..')
const COMPILERS = ['cargo', 'rustc', 'cmake', 'cc', 'c++', 'gcc', 'g++', 'clang', 'make']

const CONSUMER = `
import { Engine, LlamaError, type Generation, type GenerateOptions, type ModelInfo } from 'napi-llama'
import fs from 'node:fs'

async function main(modelPath: string): Promise<void> {
  const engine: Engine = await Engine.load({ modelPath, threads: 1, contextSize: 512 })
  const info: ModelInfo = engine.info
  const options: GenerateOptions = { maxTokens: 12, temperature: 0 }
  const reply: Generation = await engine.generate([{ role: 'user', content: 'Say hello.' }], options)
  try {
    await engine.generate('x', { maxTokens: -1 })
  } catch (err) {
    if (!(err instanceof LlamaError)) throw err
    console.error('refused:', err.code)
  }
  await engine.unload()
  // Which files this process mapped: the addon, its libraries and the CPU backend ggml chose.
  const maps = fs.readFileSync('/proc/self/maps', 'utf8').split('\\n').map((l) => l.split(/\\s+/)[5]).filter((f): f is string => !!f && /napi-llama|ggml|llama/.test(f))
  console.log(JSON.stringify({ text: reply.text, tokens: reply.completionTokens, devices: info.devices, files: [...new Set(maps)] }))
}

main(process.argv[2]).catch((err) => {
  console.error(err)
  process.exit(1)
})
`

describe('installing the packed release like a user', () => {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'napi-llama-consumer-'))
  const shims = path.join(work, 'compiler-shims')
  const compilerLog = path.join(work, 'compilers-run.log')
  let installMs = 0
  let install: ReturnType<typeof spawnSync>

  beforeAll(() => {
    const { main, platform } = releasePackages()
    fs.writeFileSync(path.join(work, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
    // Any compiler an install might reach records its call and fails.
    fs.mkdirSync(shims)
    for (const c of COMPILERS) {
      fs.writeFileSync(path.join(shims, c), `#!/bin/sh\necho "${c} $*" >> '${compilerLog}'\nexit 1\n`, { mode: 0o755 })
    }
    const env: NodeJS.ProcessEnv = { ...process.env, PATH: `${shims}${path.delimiter}${process.env.PATH}` }
    delete env.NAPI_RS_NATIVE_LIBRARY_PATH
    const started = Date.now()
    install = spawnSync('npm', ['install', '--ignore-scripts', '--no-audit', '--no-fund', main, platform], { cwd: work, env, encoding: 'utf8' })
    installMs = Date.now() - started
  }, 180_000)

  afterAll(() => {
    fs.rmSync(work, { recursive: true, force: true })
  })

  test('installs both tarballs in under 60 s without running a compiler', () => {
    expect(install.stderr).not.toMatch(/npm error/i)
    expect(install.status).toBe(0)
    expect(installMs).toBeLessThan(60_000)
    expect(fs.existsSync(compilerLog)).toBe(false)
    const installed = path.join(work, 'node_modules')
    expect(fs.existsSync(path.join(installed, 'napi-llama', 'target'))).toBe(false)
    const platformDir = fs.readdirSync(installed).find((d) => /^napi-llama-(linux|darwin|win32)-/.test(d))
    expect(platformDir).toBeDefined()
    // The main package names every platform package, at its own version, as an optional
    // dependency: npm picks the one for this platform.
    const main = JSON.parse(fs.readFileSync(path.join(installed, 'napi-llama', 'package.json'), 'utf8'))
    expect(main.optionalDependencies[platformDir!]).toBe(main.version)
    expect(Object.keys(main.optionalDependencies).length).toBeGreaterThanOrEqual(4)
    // The platform package carries ggml's CPU variants beside the addon.
    const files = fs.readdirSync(path.join(installed, platformDir!))
    expect(files.some((f) => /^libggml-cpu-.+\.so$/.test(f))).toBe(true)
  })

  test('a consumer file type-checks with tsc --strict against the public types', () => {
    fs.writeFileSync(path.join(work, 'consumer.ts'), CONSUMER)
    const tsconfig = {
      compilerOptions: {
        strict: true,
        target: 'ES2022',
        module: 'commonjs',
        moduleResolution: 'node',
        esModuleInterop: true,
        skipLibCheck: false,
        typeRoots: [path.join(ROOT, 'node_modules', '@types')],
        types: ['node'],
        outDir: 'out',
      },
      files: ['consumer.ts'],
    }
    fs.writeFileSync(path.join(work, 'tsconfig.json'), JSON.stringify(tsconfig))
    const tsc = spawnSync(process.execPath, [path.join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', work], { cwd: work, encoding: 'utf8' })
    expect(tsc.stdout + tsc.stderr).toBe('')
    expect(tsc.status).toBe(0)
  })

  test('generate() answers from the prebuilt addon, loaded from the platform package folder', () => {
    const env = { ...process.env }
    delete env.NAPI_RS_NATIVE_LIBRARY_PATH
    // Another working directory: nothing may be looked up relative to it.
    const run = spawnSync(process.execPath, [path.join(work, 'out', 'consumer.js'), SMOLLM2], { cwd: os.tmpdir(), env, encoding: 'utf8', timeout: 120_000 })
    expect(run.stderr).toContain('refused: INVALID_ARGUMENT')
    expect(run.status).toBe(0)
    const result = JSON.parse(run.stdout.trim().split('\n').pop()!)
    expect(result.text.trim().length).toBeGreaterThan(0)
    expect(result.tokens).toBeGreaterThan(0)
    expect(result.devices.some((d: string) => d.startsWith('CPU'))).toBe(true)
    const platformFolder = fs.realpathSync(path.join(work, 'node_modules', fs.readdirSync(path.join(work, 'node_modules')).find((d) => /^napi-llama-(linux|darwin|win32)-/.test(d))!))
    const files: string[] = result.files
    expect(files.some((f) => f.startsWith(platformFolder) && f.endsWith('.node'))).toBe(true)
    expect(files.some((f) => f.startsWith(platformFolder) && /libggml-cpu-.+\.so$/.test(f))).toBe(true)
    expect(files.some((f) => f.startsWith(platformFolder) && /libllama\.so/.test(f))).toBe(true)
    // Every llama.cpp/ggml library came from there: none from a build tree or the system.
    for (const f of files.filter((f) => /lib(ggml|llama)/.test(f))) expect(f.startsWith(platformFolder)).toBe(true)
  })
})
