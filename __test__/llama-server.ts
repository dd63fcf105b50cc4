// Real llama-server processes for the remote-engine and pool suites: llama.cpp's own server,
// built once per machine by scripts/llama-server.js (npm test builds it before Jest starts),
// started on loopback with a free port and ended by PID.
import { spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import * as net from 'node:net'
import * as path from 'node:path'

export interface LlamaServer {
  url: string
  port: number
  process: ChildProcess
  /** Sends a signal to the server (SIGKILL, SIGSTOP, SIGCONT). */
  signal(sig: NodeJS.Signals): void
  /** Ends the server and waits for it to exit. */
  stop(): Promise<void>
  /** Its stderr so far, for failure messages. */
  log(): string
}

function serverBinary(): string {
  if (process.env.NAPI_LLAMA_LLAMA_SERVER) return process.env.NAPI_LLAMA_LLAMA_SERVER
  // Built already on this machine (npm test makes sure of it); this only finds its path.
  const { ensureLlamaServer } = require(path.join(__dirname, '..', 'scripts', 'llama-server.js'))
  return ensureLlamaServer().server
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.unref()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
}

/** Starts llama-server on `model` and resolves once its /health answers 200. */
export async function startLlamaServer(model: string, args: string[] = []): Promise<LlamaServer> {
  const port = await freePort()
  const child = spawn(
    serverBinary(),
    ['-m', model, '--host', '127.0.0.1', '--port', String(port), '-t', '1', '-c', '2048', '-np', '2', '--no-webui', ...args],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  )
  let stderr = ''
  child.stderr!.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-20000)
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  const server: LlamaServer = {
    url: `http://127.0.0.1:${port}`,
    port,
    process: child,
    signal: (sig) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(sig)
    },
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGCONT')
        child.kill('SIGKILL')
      }
      await exited
    },
    log: () => stderr,
  }
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`llama-server exited (${child.exitCode}): ${stderr.slice(-2000)}`)
    try {
      const r = await fetch(`${server.url}/health`)
      if (r.status === 200) return server
    } catch {
      // Not listening yet.
    }
    await new Promise((r) => setTimeout(r, 100))
  }
  await server.stop()
  throw new Error(`llama-server did not become ready within 60 s: ${stderr.slice(-2000)}`)
}

/** llama-server's `/slots`: whether each slot is processing. */
export async function busySlots(server: LlamaServer): Promise<number> {
  const r = await fetch(`${server.url}/slots`)
  const slots = (await r.json()) as Array<{ is_processing: boolean }>
  return slots.filter((s) => s.is_processing).length
}
