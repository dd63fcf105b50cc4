// Download progress on stderr: on a terminal one line that rewrites itself; elsewhere (a log,
// a pipe) a line at every tenth of the file, so a log stays short. The last state is always
// shown, however fast the download was.
import { formatBytes } from './format'

const TERMINAL_INTERVAL_MS = 100
const LOG_INTERVAL_MS = 2000

export function downloadProgress(label: string, out: NodeJS.WriteStream = process.stderr): (done: number, total: number) => void {
  let lastShownAt = 0
  let lastTenth = -1
  return (done, total) => {
    const finished = total > 0 && done >= total
    const pct = total > 0 ? ` (${Math.floor((done / total) * 100)}%)` : ''
    const text = `${label}: ${formatBytes(done)}${total > 0 ? ` of ${formatBytes(total)}` : ''}${pct}`
    if (out.isTTY) {
      if (!finished && Date.now() - lastShownAt < TERMINAL_INTERVAL_MS) return
      lastShownAt = Date.now()
      out.write(`\r${text}\x1b[K${finished ? '\n' : ''}`)
      return
    }
    if (total > 0) {
      const tenth = Math.floor((done / total) * 10)
      if (tenth === lastTenth) return
      lastTenth = tenth
    } else if (Date.now() - lastShownAt < LOG_INTERVAL_MS) {
      return
    }
    lastShownAt = Date.now()
    out.write(`${text}\n`)
  }
}
