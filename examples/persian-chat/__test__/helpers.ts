// Test harness: the real app on the real Gemma 3 model, listening on a random loopback port.
import type { AddressInfo } from 'node:net'
import type { Server } from 'node:http'
import type express from 'express'
import { createApp } from '../src/app'
import { type Config, loadConfig } from '../src/config'
import { createHttpServer } from '../src/http-server'
import { LlmService } from '../src/llm'
import type { ServiceMetrics } from '../src/metrics'

/** Persian letters (Arabic block plus Persian-specific ones). */
export const PERSIAN = /[\u0600-\u06FF]/

/** Small, fast defaults for tests; each suite overrides what it exercises. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    LLM_CONTEXT_SIZE: '1024',
    LLM_MAX_TOKENS: '16',
    LLM_TEMPERATURE: '0', // greedy: the same reply on every run
    LLM_PARALLEL: '4',
    LLM_THREADS: '1',
    LOG_REQUESTS: 'false',
    RATE_LIMIT_PER_MINUTE: '0',
    // Every test client is 127.0.0.1: the per-client cap is on only where a suite tests it.
    MAX_INFLIGHT_PER_CLIENT: '0',
    HOST: '127.0.0.1',
    PORT: '0',
    ...(process.env.LLM_MODEL_PATH ? { LLM_MODEL_PATH: process.env.LLM_MODEL_PATH } : {}),
    ...env,
  })
}

export interface TestService {
  config: Config
  llm: LlmService
  app: express.Express
  metrics: ServiceMetrics
  server: Server
  url: string
  close(): Promise<void>
}

/** Starts the app; `load: false` leaves the model unloaded (for 503 tests). */
export async function startTestService(env: Record<string, string> = {}, load = true): Promise<TestService> {
  const config = testConfig(env)
  const llm = new LlmService(config)
  if (load) await llm.start()
  const { app, metrics, retrieval } = createApp(config, llm)
  // The server npm start runs, with its timeouts and connection cap.
  const { server } = createHttpServer(config, app)
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    config,
    llm,
    app,
    metrics,
    server,
    url: `http://127.0.0.1:${port}`,
    async close() {
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      await Promise.all([llm.stop(), retrieval.stop()])
    },
  }
}

/** Polls `check` until it returns true (the engine publishes counters between decode steps). */
export async function waitFor(check: () => boolean, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 20))
  }
}

/** Parses an SSE body into events. */
export function parseSse(body: string): { event: string; data: string }[] {
  return body
    .split('\n\n')
    .filter((frame) => frame.trim() !== '')
    .map((frame) => {
      let event = 'message'
      const data: string[] = []
      for (const line of frame.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7)
        else if (line.startsWith('data: ')) data.push(line.slice(6))
      }
      return { event, data: data.join('\n') }
    })
}
