// Where `chat` reads what the user says, and how it hears Ctrl-C and Ctrl-D while a reply
// streams. On a terminal, readline edits each line (Persian included: it reads whole UTF-8
// characters and leaves bidirectional display to the terminal) and keeps the history; while a
// reply streams, readline is closed and the terminal is in raw mode, so keys are neither
// echoed into the reply nor taken as the next line, and Ctrl-C arrives as a key, not a signal.
// From a pipe, lines are read in order and Ctrl-C is the SIGINT signal.
import * as readline from 'node:readline'

export interface ReplyKeys {
  /** Ctrl-C: stop the reply. */
  interrupt(): void
  /** Ctrl-D: stop the reply and leave. */
  leave(): void
}

export interface LineInput {
  /** The next line; null when the user leaves (Ctrl-D, Ctrl-C at the prompt, end of input). */
  next(): Promise<string | null>
  /** Listens for Ctrl-C and Ctrl-D while a reply streams; the returned function stops listening. */
  duringReply(keys: ReplyKeys): () => void
  close(): void
}

const CTRL_C = 0x03
const CTRL_D = 0x04
const HISTORY_SIZE = 1000

/** stdin and stdout are a terminal. */
export class TerminalInput implements LineInput {
  private history: string[] = []

  constructor(private readonly prompt: string) {}

  next(): Promise<string | null> {
    return new Promise((resolve) => {
      // A fresh interface per line: between lines the terminal belongs to the reply.
      const rl = readline.createInterface({
        input: process.stdin,
        output: process.stdout,
        terminal: true,
        prompt: this.prompt,
        history: this.history,
        historySize: HISTORY_SIZE,
        removeHistoryDuplicates: true,
      })
      let settled = false
      const settle = (line: string | null) => {
        if (settled) return
        settled = true
        rl.close()
        resolve(line)
      }
      rl.on('history', (history: string[]) => {
        this.history = history
      })
      rl.once('line', (line) => settle(line))
      rl.once('SIGINT', () => {
        process.stdout.write('\n')
        settle(null)
      })
      rl.once('close', () => {
        // Ctrl-D on an empty line: end the prompt's line before leaving.
        if (!settled) process.stdout.write('\n')
        settle(null)
      })
      rl.prompt()
    })
  }

  duringReply(keys: ReplyKeys): () => void {
    const stdin = process.stdin
    const onData = (data: Buffer) => {
      for (const byte of data) {
        if (byte === CTRL_C) keys.interrupt()
        else if (byte === CTRL_D) keys.leave()
      }
    }
    stdin.setRawMode(true)
    stdin.on('data', onData)
    stdin.resume()
    return () => {
      stdin.off('data', onData)
      stdin.pause()
      stdin.setRawMode(false)
    }
  }

  close(): void {
    process.stdin.pause()
  }
}

/** stdin is a pipe or a file (or stdout is not a terminal): one line per message, no prompt. */
export class PipedInput implements LineInput {
  private readonly rl = readline.createInterface({ input: process.stdin, terminal: false, crlfDelay: Infinity })
  private readonly lines = this.rl[Symbol.asyncIterator]()
  private keys: ReplyKeys | null = null
  private leaving: (() => void) | null = null
  private readonly onSigint = () => {
    if (this.keys) this.keys.interrupt()
    else if (this.leaving) this.leaving()
  }

  constructor() {
    process.on('SIGINT', this.onSigint)
  }

  next(): Promise<string | null> {
    const leave = new Promise<null>((resolve) => {
      this.leaving = () => resolve(null)
    })
    const line = this.lines.next().then((r) => (r.done ? null : r.value))
    return Promise.race([line, leave]).finally(() => {
      this.leaving = null
    })
  }

  duringReply(keys: ReplyKeys): () => void {
    this.keys = keys
    return () => {
      this.keys = null
    }
  }

  close(): void {
    process.off('SIGINT', this.onSigint)
    this.rl.close()
  }
}
