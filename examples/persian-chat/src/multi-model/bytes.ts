// Sizes an operator writes: `8GiB`, `512MiB`, `1.5GB` or plain bytes. IEC units (KiB, MiB, GiB,
// TiB) are powers of 1024, SI units (KB, MB, GB, TB) powers of 1000, as their names say.

const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
}

/** The number of bytes `text` names, or null when it is not a size. */
export function parseBytes(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim())
  if (!match) return null
  const unit = match[2].toLowerCase() || 'b'
  if (!(unit in UNITS)) return null
  return Math.floor(Number(match[1]) * UNITS[unit])
}

/** A size for people: `300 MiB`, `1.5 GiB`. */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let value = bytes
  let unit = 0
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024
    unit++
  }
  return `${unit === 0 ? value : value.toFixed(1).replace(/\.0$/, '')} ${units[unit]}`
}
