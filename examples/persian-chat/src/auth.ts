// API keys: which named client a request comes from, by its bearer token. Logs and metrics use
// the key's name, never the key.
import crypto from 'node:crypto'
import type { NextFunction, Request, Response } from 'express'
import type { NamedKey } from './config'
import { ApiError } from './errors'

const digest = (text: string) => crypto.createHash('sha256').update(text).digest()

export class ApiKeys {
  private readonly digests: { name: string; digest: Buffer }[]

  constructor(keys: NamedKey[]) {
    this.digests = keys.map(({ name, key }) => ({ name, digest: digest(key) }))
  }

  get required(): boolean {
    return this.digests.length > 0
  }

  /**
   * The name of the key a bearer token carries, or null. Digests have one length whatever the
   * key's, so timingSafeEqual applies and the time taken says nothing about a key's length or
   * content; every key is compared, so it says nothing about which one matched either.
   */
  identify(token: string): string | null {
    const given = digest(token)
    let found: string | null = null
    for (const { name, digest: expected } of this.digests) {
      if (crypto.timingSafeEqual(given, expected) && found === null) found = name
    }
    return found
  }
}

/** The name of the request's key, once requireApiKey accepted it. */
export function keyName(res: Response): string | undefined {
  return res.locals.keyName as string | undefined
}

/** 401 unless the request carries one of the keys (nothing to check when there are none). */
export function requireApiKey(keys: ApiKeys) {
  return (req: Request, res: Response, next: NextFunction) => {
    if (!keys.required) return next()
    const match = /^Bearer\s+(.+)$/i.exec((req.get('authorization') ?? '').trim())
    const name = match ? keys.identify(match[1]) : null
    if (name === null) return next(new ApiError(401, 'authentication_error', 'invalid_api_key', 'Missing or invalid API key (send Authorization: Bearer <key>)'))
    res.locals.keyName = name
    next()
  }
}
