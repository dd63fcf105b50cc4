// How the command line fails: one line on stderr, `napi-llama: CODE: message`, and an exit
// status; never a stack. The engine's errors keep their own codes (binding.d.ts); the command
// line adds the few below for what happens before or around the engine.

/**
 * USAGE: the command line itself is wrong (unknown command or option, a missing argument, a
 * number that is not one). MODEL_NOT_FOUND: no such file, or a model name not pulled yet.
 * INVALID_MODEL: a file that is not a readable GGUF model. DOWNLOAD_FAILED and
 * CHECKSUM_MISMATCH: `pull`.
 */
export type CliErrorCode = 'USAGE' | 'MODEL_NOT_FOUND' | 'INVALID_MODEL' | 'DOWNLOAD_FAILED' | 'CHECKSUM_MISMATCH'

export class CliError extends Error {
  readonly code: CliErrorCode

  constructor(code: CliErrorCode, message: string) {
    super(message)
    this.name = 'CliError'
    this.code = code
  }
}

/** A malformed command line, with the pointer to the help that shows the right one. */
export function usageError(message: string, command?: string): CliError {
  return new CliError('USAGE', `${message} (see napi-llama ${command ? `${command} ` : ''}--help)`)
}

export const EXIT_OK = 0
export const EXIT_FAILURE = 1
/** What shells and getopt-style tools return for a malformed command line. */
export const EXIT_USAGE = 2
/** 128 + SIGINT: what a shell reports for a command stopped by Ctrl-C. */
export const EXIT_INTERRUPTED = 130

// Codes are upper-case words (the engine's, ours, and Node's own such as ENOENT or EACCES).
const CODE_SHAPE = /^[A-Z][A-Z0-9_]*$/

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown } | null | undefined)?.code
  return typeof code === 'string' && CODE_SHAPE.test(code) ? code : 'INTERNAL'
}

/** The one line an error becomes: `napi-llama: CODE: message`, newline-terminated. */
export function errorLine(err: unknown): string {
  const code = codeOf(err)
  const raw = (err as { message?: unknown } | null | undefined)?.message
  let message = (raw !== undefined ? String(raw) : String(err)).replace(/\s*[\r\n]+\s*/g, ' ').trim()
  // Node's system errors repeat their code in the message ("ENOENT: no such file…").
  if (message.startsWith(`${code}: `)) message = message.slice(code.length + 2)
  return `napi-llama: ${code}: ${message || 'failed'}\n`
}

export function exitStatusOf(err: unknown): number {
  const code = codeOf(err)
  if (code === 'USAGE') return EXIT_USAGE
  if (code === 'ABORTED') return EXIT_INTERRUPTED
  return EXIT_FAILURE
}
