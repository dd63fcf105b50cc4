// `npm start`: reads `.env` and the environment, starts listening at once (so /health answers 503
// while the model loads), loads the model, and shuts down cleanly on SIGINT/SIGTERM: stop
// accepting connections, let running replies finish for up to SHUTDOWN_GRACE_MS, cancel the
// rest, free the model.
import fs from 'node:fs'
import path from 'node:path'
import { spawn } from 'node:child_process'
import type { Server } from 'node:http'
import dotenv from 'dotenv'
import { createApp } from './app'
import { ConfigError, type Config, loadConfig } from './config'
import { createHttpServer } from './http-server'
import { LlmService } from './llm'

function log(message: string): void {
  process.stderr.write(`[persian-chat] ${message}\n`)
}

/**
 * Fetches the default model (Gemma 3) with the addon's fetch script when it is missing. Runs in
 * a child process while the server already answers (/health says 503 loading meanwhile), and
 * stops when `signal` aborts (shutdown).
 */
function fetchDefaultModel(config: Config, signal: AbortSignal): (() => Promise<void>) | undefined {
  if (config.models || !config.backends.some((b) => b.kind === 'local')) return undefined
  if (!config.modelPathIsDefault || fs.existsSync(config.modelPath)) return undefined
  return () =>
    new Promise<void>((resolve, reject) => {
      if (signal.aborted) return reject(new Error('shutting down'))
      const script = require.resolve('napi-llama/scripts/fetch-model.js')
      log(`model not found at ${config.modelPath}; fetching Gemma 3 with napi-llama's fetch script`)
      // Its own process group: the script runs pip, which a kill of the script alone would leave
      // downloading.
      const child = spawn(process.execPath, [script, 'gemma3'], { stdio: ['ignore', 'ignore', 'inherit'], detached: true })
      const stop = () => {
        try {
          process.kill(-child.pid!, 'SIGTERM')
        } catch {
          // already gone
        }
      }
      signal.addEventListener('abort', stop, { once: true })
      child.on('error', reject)
      child.on('exit', (code) => {
        signal.removeEventListener('abort', stop)
        if (signal.aborted) reject(new Error('fetching the default model was stopped by the shutdown'))
        else if (code === 0) resolve()
        else reject(new Error(`fetching the default model failed (exit ${code}); set LLM_MODEL_PATH`))
      })
    })
}

export interface RunningService {
  server: Server
  llm: LlmService
  close(): Promise<void>
}

/** Starts the HTTP server and begins loading the model; resolves once listening. */
export async function startService(config: Config): Promise<RunningService> {
  const llm = new LlmService(config)
  const { app, retrieval } = createApp(config, llm)
  const { server, drained } = createHttpServer(config, app)
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(config.port, config.host, () => resolve())
  })
  const shutdown = new AbortController()
  llm.start(fetchDefaultModel(config, shutdown.signal)).then(
    (info) => {
      if (!info) log(`${config.models!.length} models configured (LLM_MODELS_FILE); each loads on its first request`)
    },
    // The registry logs the load and its failure; /health reports it.
    () => undefined,
  )
  const close = async () => {
    shutdown.abort() // a first-start download of the model stops here
    // Stop accepting connections; idle ones close now, the others once their reply is done.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    server.closeIdleConnections()
    if (!(await drained(config.shutdownGraceMs))) log('replies still running after SHUTDOWN_GRACE_MS: cancelling them')
    // Cancels what is left (streams end with an error event) and frees the model.
    await Promise.all([llm.stop(), retrieval.stop()])
    server.closeIdleConnections()
    // A connection still open now belongs to a client that stopped reading.
    const force = setTimeout(() => server.closeAllConnections(), 5000)
    await closed
    clearTimeout(force)
  }
  return { server, llm, close }
}

async function main(): Promise<void> {
  dotenv.config({ path: path.join(process.cwd(), '.env'), quiet: true })
  let config: Config
  try {
    config = loadConfig()
  } catch (err) {
    if (err instanceof ConfigError) {
      log(`configuration error: ${err.message}`)
      process.exit(2)
    }
    throw err
  }
  const service = await startService(config)
  const address = service.server.address()
  const where = typeof address === 'object' && address ? `http://${config.host}:${address.port}` : String(address)
  log(`listening on ${where} (web page at /, OpenAI API at /v1, health at /health)`)

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) {
      log(`${signal} again: exiting now`)
      process.exit(1)
    }
    stopping = true
    log(`${signal}: shutting down`)
    service.close().then(
      () => process.exit(0),
      (err) => {
        log(`shutdown failed: ${(err as Error).message}`)
        process.exit(1)
      },
    )
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}

if (require.main === module) {
  main().catch((err: Error) => {
    log(`failed to start: ${err.stack ?? err.message}`)
    process.exit(1)
  })
}
