// The memory budget's eviction rule, apart from the loading machinery so it reads in one place:
// to make room, unload the least recently used idle models, and only if that makes enough room.

/** A model that holds (or is about to hold) memory. */
export interface Resident {
  name: string
  bytes: number
  lastUsedAt: number
  /** False while it serves requests, loads or unloads: such a model is never evicted. */
  evictable: boolean
}

/**
 * The models to unload, least recently used first, so that `needBytes` more fit `budgetBytes`:
 * none when they fit already, null when unloading every evictable model would not be enough
 * (the caller then waits for busy models to become idle rather than unload any in vain).
 */
export function evictionsFor(residents: Resident[], needBytes: number, budgetBytes: number): string[] | null {
  let used = residents.reduce((sum, r) => sum + r.bytes, 0)
  if (used + needBytes <= budgetBytes) return []
  const chosen: string[] = []
  for (const r of residents.filter((r) => r.evictable).sort((a, b) => a.lastUsedAt - b.lastUsedAt)) {
    chosen.push(r.name)
    used -= r.bytes
    if (used + needBytes <= budgetBytes) return chosen
  }
  return null
}
