// Per-layer profile of one training step (forward / backward split) and one inference batch of
// each reference workload, with the bytes kept for BPTT: writes the model specs of
// benches/workloads.ts and runs `examples/workload_profile` (Rust, no addon) on each.
//   npm run bench:profile [-- --steps 6]      (prints Markdown tables; see benches/results/profile.md)
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { WORKLOADS } from './workloads'

const { values } = parseArgs({ options: { steps: { type: 'string', default: '6' } } })
const dir = mkdtempSync(join(tmpdir(), 'dualstream-profile-'))
try {
  const build = spawnSync('cargo', ['build', '--release', '-p', 'dualstream-core', '--example', 'workload_profile'], { stdio: 'inherit' })
  if (build.status !== 0) process.exit(build.status ?? 1)
  for (const w of WORKLOADS) {
    const spec = join(dir, `${w.name}.json`)
    writeFileSync(spec, JSON.stringify({ timeSteps: w.timeSteps, inputShape: w.sampleShape, encoding: w.encoding, layers: w.layers }))
    const bin = join(__dirname, '..', 'target', 'release', 'examples', 'workload_profile')
    const r = spawnSync(bin, [spec, values.steps!, String(w.batch)], { encoding: 'utf8', env: { ...process.env, RAYON_NUM_THREADS: '2' } })
    if (r.status !== 0) throw new Error(`${w.name}: ${r.stderr}`)
    process.stdout.write(r.stdout.replace(spec, w.name))
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
