// The command line: `napi-llama <command> [options]` (bin/napi-llama.js runs `main`). Each
// command is a module with its spec (options and help) and its `run`; failures become one line,
// `napi-llama: CODE: message`, on stderr.
import * as fs from 'node:fs'
import * as path from 'node:path'
import type { CommandSpec, ParsedCommand } from './args'
import { helpText, parseCommand } from './args'
import { EXIT_OK, errorLine, exitStatusOf, usageError } from './cli-error'
import * as bench from './bench'
import * as chat from './chat'
import * as inspect from './inspect'
import { MODEL_OPERAND_NOTE, modelsDir } from './models'
import * as pull from './pull'

interface Command {
  spec: CommandSpec
  run(parsed: ParsedCommand): Promise<number>
}

const COMMANDS: Record<string, Command> = { pull, chat, inspect, bench }

function version(): string {
  const manifest = path.join(__dirname, '..', '..', 'package.json')
  return (JSON.parse(fs.readFileSync(manifest, 'utf8')) as { version: string }).version
}

function overview(): string {
  const rows = Object.values(COMMANDS).map(({ spec }) => `  ${`${spec.name} ${spec.operands}`.padEnd(20)}${spec.brief}`)
  return [
    'Usage: napi-llama <command> [options]',
    '',
    'llama.cpp models from the terminal, through the napi-llama engine.',
    '',
    'Commands:',
    ...rows,
    '',
    MODEL_OPERAND_NOTE,
    `Models are kept in ${modelsDir()} (NAPI_LLAMA_MODELS_DIR moves them).`,
    '',
    'napi-llama <command> --help shows a command\'s options; napi-llama --version prints the version.',
    '',
  ].join('\n')
}

async function dispatch(argv: string[]): Promise<number> {
  const [first, ...rest] = argv
  if (first === undefined || first === '--help' || first === '-h' || first === 'help') {
    const topic = first === 'help' && rest[0] !== undefined ? COMMANDS[rest[0]] : undefined
    process.stdout.write(topic ? helpText(topic.spec) : overview())
    return EXIT_OK
  }
  if (first === '--version' || first === '-v') {
    process.stdout.write(`${version()}\n`)
    return EXIT_OK
  }
  if (!Object.prototype.hasOwnProperty.call(COMMANDS, first)) {
    throw usageError(first.startsWith('-') ? `unknown option ${first}` : `unknown command "${first}": use ${Object.keys(COMMANDS).join(', ')}`)
  }
  const command = COMMANDS[first]
  const parsed = parseCommand(command.spec, rest)
  if (parsed.help) {
    process.stdout.write(helpText(command.spec))
    return EXIT_OK
  }
  return command.run(parsed)
}

/**
 * The error contract holds for failures outside a command's own code too: an exception from a
 * callback, or a reader that closes stdout early (`| head`, which is not an error at all).
 */
function lastResort(): void {
  const fail = (err: unknown) => {
    process.stderr.write(errorLine(err))
    process.exit(exitStatusOf(err))
  }
  process.on('uncaughtException', fail)
  process.on('unhandledRejection', fail)
  process.stdout.on('error', (err: NodeJS.ErrnoException) => (err.code === 'EPIPE' ? process.exit(EXIT_OK) : fail(err)))
}

/** Runs a command line; resolves with the exit status and never rejects. */
export async function main(argv: string[]): Promise<number> {
  lastResort()
  try {
    return await dispatch(argv)
  } catch (err) {
    process.stderr.write(errorLine(err))
    return exitStatusOf(err)
  }
}
