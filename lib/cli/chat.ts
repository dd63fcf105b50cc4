// `napi-llama chat <model>`: an interactive chat in the terminal, streamed as it is generated.
// Reply text is written chunk by chunk as the engine delivers it: each chunk is whole UTF-8
// characters, written whole, and the terminal lays out right-to-left text (Persian) itself.
import type { CommandSpec, ParsedCommand } from './args'
import { countOption, flag, numberOption, textOption } from './args'
import { errorLine } from './cli-error'
import { plural } from './format'
import { ChatSession } from './chat-session'
import type { Reply, ReplySink } from './chat-session'
import { PipedInput, TerminalInput } from './line-input'
import type { LineInput } from './line-input'
import { checkReplyOptions, loadEngine } from './load'
import { MODEL_OPERAND_NOTE, resolveModel } from './models'
import type { GenerateOptions } from '../options'

export const spec: CommandSpec = {
  name: 'chat',
  operands: '<model>',
  minOperands: 1,
  maxOperands: 1,
  brief: 'chat with a model in the terminal, streamed',
  summary:
    'Chat with a model in the terminal. Replies stream as they are generated; Ctrl-C stops a reply, and Ctrl-C at the prompt, Ctrl-D or /exit leaves. /reset starts a new conversation. From a pipe, each line is a message and only the replies are printed, one after another.',
  options: {
    system: { type: 'string', value: 'TEXT', description: 'system message that opens the conversation' },
    temperature: { type: 'string', value: 'T', description: 'sampling temperature; 0 is greedy (default: the engine\'s)' },
    'max-tokens': { type: 'string', value: 'N', description: 'most tokens in one reply (default: the engine\'s)' },
    seed: { type: 'string', value: 'N', description: 'sampling seed, for replies that can be repeated' },
    threads: { type: 'string', value: 'N', description: 'llama.cpp threads (default: the physical cores)' },
    context: { type: 'string', value: 'N', description: 'tokens of context (default: min(trained context, 4096)); the oldest turns make room when a chat outgrows it' },
    stats: { type: 'boolean', description: 'after each reply, print its tokens, speed and prompt tokens to stderr' },
  },
  notes: [MODEL_OPERAND_NOTE],
}

const PROMPT = '>>> '
const COMMANDS_HELP = '/reset starts a new conversation, /exit leaves'

// Dim text for a thinking model's reasoning, on a terminal only.
const DIM = '\x1b[2m'
const PLAIN = '\x1b[22m'

function replyOptions(values: ParsedCommand['values']): GenerateOptions {
  const options: GenerateOptions = {}
  const temperature = numberOption(spec, values, 'temperature')
  const maxTokens = countOption(spec, values, 'max-tokens')
  const seed = countOption(spec, values, 'seed', 0)
  if (temperature !== undefined) options.temperature = temperature
  if (maxTokens !== undefined) options.maxTokens = maxTokens
  if (seed !== undefined) options.seed = seed
  return options
}

/**
 * Writes a reply as it streams. A thinking model's reasoning shows dimmed on a terminal, on
 * lines of its own; from a pipe only the reply is printed.
 */
function replyPrinter(interactive: boolean): ReplySink & { endLine(): void } {
  const out = process.stdout
  let atLineStart = true
  let inReasoning = false
  const write = (text: string) => {
    out.write(text)
    atLineStart = text.endsWith('\n')
  }
  return {
    text(piece) {
      if (inReasoning) {
        inReasoning = false
        if (!atLineStart) write('\n')
      }
      write(piece)
    },
    reasoning(piece) {
      if (!interactive) return
      inReasoning = true
      out.write(DIM)
      write(piece)
      out.write(PLAIN)
    },
    endLine() {
      if (!atLineStart) write('\n')
    },
  }
}

/** One turn: the reply streamed, stoppable from the keyboard. Reports whether the user asked to leave. */
async function replyTo(line: string, session: ChatSession, input: LineInput, interactive: boolean, showStats: boolean): Promise<{ leaving: boolean }> {
  const stop = new AbortController()
  let leaving = false
  const stopListening = input.duringReply({
    interrupt: () => stop.abort(),
    leave: () => {
      leaving = true
      stop.abort()
    },
  })
  const printer = replyPrinter(interactive)
  try {
    const reply = await session.reply(line, printer, stop.signal)
    printer.endLine()
    if (!reply.generation) note('(stopped)')
    else if (showStats) process.stderr.write(statsLine(reply))
  } catch (err) {
    // A failed reply (the message alone does not fit the context, say) ends that turn only.
    printer.endLine()
    process.stderr.write(errorLine(err))
  } finally {
    stopListening()
  }
  return { leaving }
}

/** What the chat says about itself goes to stderr, apart from the replies. */
function note(text: string): void {
  process.stderr.write(`${text}\n`)
}

function statsLine(reply: Reply): string {
  const g = reply.generation
  if (!g) return ''
  return `(${g.completionTokens} tokens, ${g.timings.tokensPerSecond.toFixed(1)} tokens/s; prompt ${g.promptTokens} tokens, ${g.cachedTokens} cached)\n`
}

export async function run({ values, operands }: ParsedCommand): Promise<number> {
  const modelPath = resolveModel(operands[0])
  const options = replyOptions(values)
  const contextSize = countOption(spec, values, 'context')
  const threads = countOption(spec, values, 'threads')
  const system = textOption(values, 'system')
  const showStats = flag(values, 'stats')
  await checkReplyOptions(options)
  const engine = await loadEngine({ modelPath, parallel: 1, ...(contextSize !== undefined && { contextSize }), ...(threads !== undefined && { threads }) })
  const interactive = Boolean(process.stdin.isTTY && process.stdout.isTTY)
  const input: LineInput = interactive ? new TerminalInput(PROMPT) : new PipedInput()
  try {
    if (interactive) {
      const info = engine.info
      note(`${info.name} · context ${info.contextSize} tokens · ${plural(info.threads, 'thread')}. Ctrl-C stops a reply; ${COMMANDS_HELP} (or Ctrl-D).`)
    }
    const session = new ChatSession(engine, system, options)
    for (;;) {
      const line = await input.next()
      if (line === null) break
      const text = line.trim()
      if (text === '') continue
      if (text === '/exit' || text === '/quit') break
      if (text === '/reset') {
        session.reset()
        note('(new conversation)')
        continue
      }
      if (/^\/\w+$/.test(text)) {
        note(`unknown command ${text}: ${COMMANDS_HELP}`)
        continue
      }
      const { leaving } = await replyTo(line, session, input, interactive, showStats)
      if (leaving) break
    }
  } finally {
    input.close()
    await engine.unload()
  }
  return 0
}
