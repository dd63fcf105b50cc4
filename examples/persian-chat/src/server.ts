// `npm start`: reads `.env` and the environment, starts listening at once (so /health answers 503
// while the model loads), loads the model, and shuts down cleanly on SIGINT/SIGTERM: stop
// accepting connections, cancel in-flight generations, free the model.
import fs from 'node:fs'
import path from 'node:path'
import type { Server } from 'node:http'
import dotenv from 'dotenv'
import { createApp } from './app'
import { ConfigError, type Config, loadConfig } from './config'
import { LlmService } from './llm'

function log(message: string): void {
  process.stderr.write(`[persian-chat] ${message}\n`)
}

/** Fetches the default model (Gemma 3) with the addon's fetch script when it is missing. */
function ensureDefaultModel(config: Config): void {
  if (!config.modelPathIsDefault || fs.existsSync(config.modelPath)) return
  log(`model not found at ${config.modelPath}; fetching Gemma 3 with napi-llama's fetch script`)
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const fetchModel = require('napi-llama/scripts/fetch-model') as { ensureModel(name: string): string }
  fetchModel.ensureModel('gemma3')
}

export interface RunningService {
  server: Server
  llm: LlmService
  close(): Promise<void>
}

/** Starts the HTTP server and begins loading the model; resolves once listening. */
export async function startService(config: Config): Promise<RunningService> {
  const llm = new LlmService(config)
  const { app } = createApp(config, llm)
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.port, config.host, () => resolve(s))
    s.once('error', reject)
  })
  // Streams can be long; Node's default 5 s keep-alive and request timeouts are for short requests.
  server.requestTimeout = 0
  server.headersTimeout = 60_000
  const started = Date.now()
  llm.start().then(
    (info) => log(`model "${info.name}" loaded in ${Date.now() - started} ms (context ${info.contextSize}, ${info.parallel} slots, ${info.threads} threads)`),
    (err: Error) => log(`model failed to load: ${err.message} — /health reports 503`),
  )
  const close = async () => {
    // Stop accepting, cancel generations (their streams end with an error event), then wait
    // for open responses to finish; sockets still open after 5 s are closed.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()))
    await llm.stop()
    server.closeIdleConnections()
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
  ensureDefaultModel(config)
  const service = await startService(config)
  const address = service.server.address()
  const where = typeof address === 'object' && address ? `http://${config.host}:${address.port}` : String(address)
  log(`listening on ${where} (web page at /, OpenAI API at /v1, health at /health)`)

  let stopping = false
  const stop = (signal: string) => {
    if (stopping) return
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
