// Chat affinity: a conversation's later turns go to the backend that served its earlier ones,
// whose prompt cache still holds them. A conversation is known by its opening (the messages up
// to and including the first user message), which every later turn repeats.
import { createHash } from 'node:crypto'
import type * as binding from '../../binding'

/** How much of a string prompt identifies it: a continued completion repeats its start. */
const PROMPT_KEY_CHARS = 512

export function conversationKey(input: string | binding.ChatMessage[]): string {
  const hash = createHash('sha1')
  if (typeof input === 'string') {
    hash.update('p\0').update(input.slice(0, PROMPT_KEY_CHARS))
  } else {
    const firstUser = input.findIndex((m) => m.role === 'user')
    const opening = firstUser < 0 ? input : input.slice(0, firstUser + 1)
    for (const m of opening) hash.update(m.role).update('\0').update(m.content).update('\0')
  }
  return hash.digest('base64url')
}

/** Conversation → backend name, forgetting the least recently used beyond `limit`. */
export class AffinityTable {
  private readonly entries = new Map<string, string>()

  constructor(private readonly limit = 50_000) {}

  get(key: string): string | undefined {
    const name = this.entries.get(key)
    if (name !== undefined) {
      this.entries.delete(key)
      this.entries.set(key, name)
    }
    return name
  }

  set(key: string, name: string): void {
    this.entries.delete(key)
    this.entries.set(key, name)
    if (this.entries.size > this.limit) {
      const oldest = this.entries.keys().next()
      if (!oldest.done) this.entries.delete(oldest.value)
    }
  }

  get size(): number {
    return this.entries.size
  }
}
