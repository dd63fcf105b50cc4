// A cap on the requests one client has running or queued at once (app.ts keeps one per engine). The engine's queue
// is first come, first served: without a cap, one client sending many requests at once takes
// every slot and every queue place, and everyone else gets queue_full until it is done.
import type { NextFunction, Request, Response } from 'express'
import { keyName } from './auth'
import { ApiError } from './errors'
import type { ServiceMetrics } from './metrics'

/** Who a request counts against: its key's name, or its IP when the service has no keys. */
export function clientOf(req: Request, res: Response): string {
  return keyName(res) ?? `ip:${req.ip}`
}

/** Applies to POSTs (every POST under /api and /v1 runs the model); 0 turns the cap off. */
export function perClientLimit(limit: number, metrics: ServiceMetrics) {
  const inflight = new Map<string, number>()
  return (req: Request, res: Response, next: NextFunction) => {
    if (limit === 0 || req.method !== 'POST') return next()
    const client = clientOf(req, res)
    const count = inflight.get(client) ?? 0
    if (count >= limit) {
      metrics.clientLimitRejections.inc({ client: metrics.clientLabel(res) })
      return next(
        new ApiError(429, 'rate_limit_error', 'too_many_concurrent_requests', `This client already has ${limit} requests running or waiting; send more when one has finished`),
      )
    }
    inflight.set(client, count + 1)
    // 'close' comes once the reply is sent or the client went away (its generation is then
    // cancelled), never twice.
    res.once('close', () => {
      const left = (inflight.get(client) ?? 1) - 1
      if (left === 0) inflight.delete(client)
      else inflight.set(client, left)
    })
    next()
  }
}
