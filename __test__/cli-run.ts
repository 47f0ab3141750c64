// Runs the built CLI (`dist/cli.js`) the way a user does, for the specs that test it.
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import type { ExecutionContext } from 'ava'

const cli = join(__dirname, '..', 'dist', 'cli.js')

export const run = (...args: string[]) =>
  spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 })

/** `{ dataset: 'mnist', epochs: 1 }` as `--dataset mnist --epochs 1`. */
export function flags(options: Record<string, string | number>): string[] {
  return Object.entries(options).flatMap(([key, value]) => [`--${key}`, String(value)])
}

/** The JSON summary on the last stdout line of a run that must have succeeded. */
export function summaryOf(t: ExecutionContext, r: ReturnType<typeof run>) {
  t.is(r.status, 0, r.stderr)
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!)
}
