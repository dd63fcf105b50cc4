// DNS rebinding: a web page whose domain the attacker re-points at 127.0.0.1 calls this service
// as its own origin, so neither CORS nor the browser stops it. Its requests still carry the
// attacker's domain in `Host`, so the service answers only names it knows: IP literals (a page
// cannot rebind an address), `localhost`, and ALLOWED_HOSTS. Hand-written: the rule is a few
// lines, and no well-kept Express middleware does exactly this.
import type { NextFunction, Request, Response } from 'express'
import { type Config, isLoopback } from './config'
import { ApiError } from './errors'
import net from 'node:net'

/** The host name of a `Host` header (port and IPv6 brackets removed), or null if malformed. */
function hostName(header: string): string | null {
  try {
    return new URL(`http://${header}`).hostname.replace(/^\[(.*)\]$/, '$1').toLowerCase()
  } catch {
    return null
  }
}

/**
 * Checks `Host` when the service listens on loopback (where rebinding matters), or anywhere once
 * ALLOWED_HOSTS names the hosts it serves.
 */
export function hostCheck(config: Pick<Config, 'host' | 'allowedHosts'>) {
  const enforce = isLoopback(config.host) || config.allowedHosts.length > 0
  const allowed = new Set(['localhost', ...config.allowedHosts])
  return (req: Request, _res: Response, next: NextFunction) => {
    if (!enforce) return next()
    const name = hostName(req.get('host') ?? '')
    if (name !== null && (net.isIP(name) !== 0 || allowed.has(name))) return next()
    next(
      new ApiError(403, 'permission_error', 'host_not_allowed', `This service does not answer for the host "${req.get('host') ?? ''}" (add it to ALLOWED_HOSTS)`),
    )
  }
}
