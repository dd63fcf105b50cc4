// Reading a command's options with Node's own util.parseArgs (no dependency needed for flags
// and values), and writing its --help from the same table, so the two cannot disagree.
import { parseArgs } from 'node:util'
import { usageError } from './cli-error'

export interface OptionSpec {
  type: 'string' | 'boolean'
  short?: string
  /** What the value is, for the help (`--threads N`). */
  value?: string
  description: string
}

export interface CommandSpec {
  name: string
  /** What follows the command name in the usage line, e.g. `<model>`. */
  operands: string
  /** How many operands the command takes. */
  minOperands: number
  maxOperands: number
  /** One line for the list of commands. */
  brief: string
  /** The opening paragraph of the command's help. */
  summary: string
  /** Paragraphs after the options. */
  notes?: string[]
  options: Record<string, OptionSpec>
}

export type OptionValues = Record<string, string | boolean | undefined>

export interface ParsedCommand {
  values: OptionValues
  operands: string[]
  help: boolean
}

const HELP_OPTION: OptionSpec = { type: 'boolean', short: 'h', description: 'show this help' }

export function parseCommand(spec: CommandSpec, argv: string[]): ParsedCommand {
  const options = { ...spec.options, help: HELP_OPTION }
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      strict: true,
      options: Object.fromEntries(Object.entries(options).map(([name, o]) => [name, o.short ? { type: o.type, short: o.short } : { type: o.type }])),
    })
  } catch (err) {
    // parseArgs explains itself well; its hint about `--` does not apply to these commands.
    const message = String((err as Error).message).replace(/\. To specify a positional argument.*$/s, '')
    throw usageError(message, spec.name)
  }
  const values = parsed.values as OptionValues
  const help = values.help === true
  const operands = parsed.positionals
  if (!help && operands.length < spec.minOperands) throw usageError(`missing ${spec.operands}`, spec.name)
  if (!help && operands.length > spec.maxOperands) throw usageError(`unexpected argument "${operands[spec.maxOperands]}"`, spec.name)
  return { values, operands, help }
}

function wrap(text: string, width: number, indent: string): string {
  const lines: string[] = []
  let line = ''
  for (const word of text.split(/\s+/)) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line)
      line = word
    } else {
      line = line ? `${line} ${word}` : word
    }
  }
  if (line) lines.push(line)
  return lines.join(`\n${indent}`)
}

export function helpText(spec: CommandSpec): string {
  const options = { ...spec.options, help: HELP_OPTION }
  const labels = Object.entries(options).map(([name, o]) => `${o.short ? `-${o.short}, ` : '    '}--${name}${o.value ? ` ${o.value}` : ''}`)
  const width = Math.max(...labels.map((l) => l.length)) + 2
  const rows = Object.values(options).map((o, i) => `  ${labels[i].padEnd(width)}${wrap(o.description, 96 - width, ' '.repeat(width + 2))}`)
  const notes = (spec.notes ?? []).map((n) => `\n${wrap(n, 98, '')}\n`).join('')
  return `Usage: napi-llama ${spec.name} ${spec.operands} [options]\n\n${wrap(spec.summary, 98, '')}\n\nOptions:\n${rows.join('\n')}\n${notes}`
}

function stringValue(values: OptionValues, name: string): string | undefined {
  const v = values[name]
  return typeof v === 'string' ? v : undefined
}

/** A number option; its range is the engine's to check (it names the limits). */
export function numberOption(spec: CommandSpec, values: OptionValues, name: string): number | undefined {
  const text = stringValue(values, name)
  if (text === undefined) return undefined
  const n = Number(text)
  if (text.trim() === '' || !Number.isFinite(n)) throw usageError(`--${name} ${text} is not a number`, spec.name)
  return n
}

/** A count (threads, tokens, repetitions): a whole number of at least `min`. */
export function countOption(spec: CommandSpec, values: OptionValues, name: string, min = 1): number | undefined {
  const n = numberOption(spec, values, name)
  if (n !== undefined && (!Number.isInteger(n) || n < min)) throw usageError(`--${name} must be a whole number of at least ${min}, not ${values[name]}`, spec.name)
  return n
}

export function textOption(values: OptionValues, name: string): string | undefined {
  return stringValue(values, name)
}

export function flag(values: OptionValues, name: string): boolean {
  return values[name] === true
}
