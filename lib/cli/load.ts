// Loading a model for `chat` and `bench`. The engine (and with it the native addon) is
// imported here, on first use, so `pull`, `inspect` and every --help work without it.
import * as path from 'node:path'
import type { Engine } from '../engine'
import type { GenerateOptions, InitializeOptions } from '../options'

/**
 * Reply options checked the way a request checks them, before the model loads: a bad
 * --temperature fails at once with the engine's INVALID_ARGUMENT, not at the first message.
 */
export async function checkReplyOptions(options: GenerateOptions): Promise<void> {
  const [{ generateOptions }, { NativeEngine }, { toError }] = await Promise.all([import('../options'), import('../../binding'), import('../errors')])
  try {
    NativeEngine.checkGenerateOptions(generateOptions(options).native)
  } catch (err) {
    throw toError(err)
  }
}

/** Loads a model, showing progress on a terminal. */
export async function loadEngine(options: Omit<InitializeOptions, 'replace' | 'onProgress'>): Promise<Engine> {
  const { Engine } = await import('../engine')
  const err = process.stderr
  const label = `loading ${path.basename(options.modelPath)}`
  let shown = -1
  const onProgress = err.isTTY
    ? (fraction: number) => {
        const percent = Math.round(fraction * 100)
        if (percent !== shown) err.write(`\r${label} ${percent}%\x1b[K`)
        shown = percent
      }
    : undefined
  try {
    return await Engine.load({ ...options, onProgress })
  } finally {
    if (err.isTTY) err.write('\r\x1b[K')
  }
}
