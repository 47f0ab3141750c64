// Finds the Python interpreter of the interop environment (scripts/python/setup-venv.sh) for the
// specs whose proof is the other framework running what we wrote. Without it those specs are
// skipped, unless DUALSTREAM_REQUIRE_PYTHON=1 (CI sets it), where they fail instead.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import test from 'ava'

const candidate = process.env.DUALSTREAM_PYTHON ?? join(__dirname, '..', '.venv-interop', 'bin', 'python')

/** The interpreter's path, or null when the interop environment is not installed. */
export const python: string | null = existsSync(candidate) ? candidate : null

const required = process.env.DUALSTREAM_REQUIRE_PYTHON === '1'

/** `test` where Python is available (or required), else `test.skip`. */
export const pythonTest = python || required ? test : test.skip

/** Runs a Python script with arguments; throws with its stderr when it exits non-zero. */
export function runPython(script: string, args: string[], options: { timeoutMs?: number } = {}): string {
  if (!python) throw new Error(`no Python interop environment at ${candidate}: run scripts/python/setup-venv.sh`)
  const result = spawnSync(python, [script, ...args], {
    encoding: 'utf8',
    timeout: options.timeoutMs ?? 600_000,
    maxBuffer: 64 * 1024 * 1024,
  })
  if (result.status !== 0) {
    throw new Error(`${script} exited with ${result.status ?? result.signal}:\n${result.stderr}`)
  }
  return result.stdout
}
