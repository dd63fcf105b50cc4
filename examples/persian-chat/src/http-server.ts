// The HTTP server around the app, with Node's own limits set from the configuration, and a
// drain for shutdown. Node enforces these: a client that sends its headers or body too slowly,
// goes quiet, or opens connections without end is cut off without costing a slot.
import http from 'node:http'
import type { Socket } from 'node:net'
import type express from 'express'
import type { Config } from './config'

type Limits = Pick<Config, 'headersTimeoutMs' | 'requestTimeoutMs' | 'socketIdleTimeoutMs' | 'keepAliveTimeoutMs' | 'maxConnections'>

export interface HttpServer {
  server: http.Server
  /** Resolves once no request is in progress, or false when `graceMs` passed first. */
  drained(graceMs: number): Promise<boolean>
}

export function createHttpServer(config: Limits, app: express.Express): HttpServer {
  const server = http.createServer(
    {
      headersTimeout: config.headersTimeoutMs,
      requestTimeout: config.requestTimeoutMs,
      keepAliveTimeout: config.keepAliveTimeoutMs,
      // Node checks the two deadlines above on this period: a fraction of the shorter one, so
      // neither is overrun by much.
      connectionsCheckingInterval: Math.max(10, Math.min(30_000, Math.floor(config.headersTimeoutMs / 4))),
    },
    app,
  )
  server.maxConnections = config.maxConnections
  server.setTimeout(config.socketIdleTimeoutMs, (socket: Socket) => socket.destroy())

  let active = 0
  let idle: (() => void)[] = []
  server.on('request', (_req: http.IncomingMessage, res: http.ServerResponse) => {
    active++
    res.once('close', () => {
      active--
      if (active === 0) for (const wake of idle.splice(0)) wake()
    })
  })

  const drained = (graceMs: number) =>
    new Promise<boolean>((resolve) => {
      if (active === 0) return resolve(true)
      const timer = setTimeout(() => {
        idle = idle.filter((wake) => wake !== done)
        resolve(false)
      }, graceMs)
      const done = () => {
        clearTimeout(timer)
        resolve(true)
      }
      idle.push(done)
    })

  return { server, drained }
}
