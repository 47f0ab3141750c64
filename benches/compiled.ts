// Runs a benchmark script as plain compiled JavaScript, the way an npm user's program runs,
// instead of under the tsx loader: tsx's hooks alone add ~40 MiB to a process's resident
// memory (measured: 88 vs 48 MiB at start), which the peak-RSS figures should not charge to
// the engine. The script is bundled with esbuild (tsx's own dependency; packages and the
// native addon stay external) into the repository root, so the addon loader finds the
// `.node` file beside it as it does from `dist/`.
import { spawnSync } from 'node:child_process'
import { rmSync } from 'node:fs'
import { basename, join } from 'node:path'

const root = join(__dirname, '..')

/** Bundles `entry` (a .ts path) and calls `run` with the bundle's path; removes it afterwards. */
export function withCompiled<R>(entry: string, run: (script: string) => R): R {
  const out = join(root, `.bench-${basename(entry, '.ts')}-${process.pid}.js`)
  const esbuild = join(root, 'node_modules', '.bin', 'esbuild')
  const args = [
    entry,
    '--bundle',
    '--platform=node',
    '--format=cjs',
    `--outfile=${out}`,
    '--external:*.node',
    '--packages=external',
    '--log-level=warning',
  ]
  const built = spawnSync(esbuild, args, { encoding: 'utf8' })
  if (built.status !== 0) throw new Error(`esbuild ${entry}: ${built.stderr || built.error}`)
  try {
    return run(out)
  } finally {
    rmSync(out, { force: true })
  }
}
