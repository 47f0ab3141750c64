// Side by side with SpikingJelly on the reference workloads W1 and W2: the same batch, both
// engines in this session, 2 threads each; prints ratios (ours / theirs) and records them.
//   npm run bench:compare [-- --steps 10]
//   npm run bench:compare -- --scaling [--steps 3]   W1 at T = 4, 8, 16 (N = 32) and N = 8, 16, 32 (T = 4)
// Needs the Python environment of scripts/reference/make-fixtures.sh (torch + spikingjelly from
// PyPI): `scripts/reference/make-fixtures.sh --venv-only` creates it in .venv-reference/.
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { withCompiled } from '../compiled'
import { record } from '../record'
import { syntheticBatch, workload } from '../workloads'

const { values } = parseArgs({ options: { steps: { type: 'string' }, scaling: { type: 'boolean', default: false } } })
const steps = values.steps ?? (values.scaling ? '3' : '10')
const root = join(__dirname, '..', '..')
const python = join(root, '.venv-reference', 'bin', 'python')
if (!existsSync(python)) {
  console.error(`no ${python}: run scripts/reference/make-fixtures.sh --venv-only first (installs torch and spikingjelly from PyPI)`)
  process.exit(2)
}
const runs: [string, number?, number?][] = values.scaling
  ? [['W1', 4, 8], ['W1', 4, 16], ['W1', 4, 32], ['W1', 8, 32], ['W1', 16, 32]]
  : [['W1'], ['W2']]
const dir = mkdtempSync(join(tmpdir(), 'dualstream-compare-'))
try {
  withCompiled(join(__dirname, '..', 'workloads-run.ts'), (script) => compare(script))
} finally {
  rmSync(dir, { recursive: true, force: true })
}

function compare(script: string): void {
  const rows = []
  for (const [name, t, n] of runs) {
    const w = workload(name, t, n)
    const { x, y } = syntheticBatch(w)
    const input = join(dir, `${name}.bin`)
    const bytes = new Uint8Array(x.byteLength + y.byteLength)
    bytes.set(new Uint8Array(x.buffer, x.byteOffset, x.byteLength), 0)
    bytes.set(new Uint8Array(y.buffer, y.byteOffset, y.byteLength), x.byteLength)
    writeFileSync(input, bytes)
    const env = { ...process.env, RAYON_NUM_THREADS: '2', OMP_NUM_THREADS: '2' }
    const sizes = ['--time-steps', String(w.timeSteps), '--batch', String(w.batch)]
    const ours = spawnSync(process.execPath, [script, '--only', name, '--steps', steps, ...sizes], { encoding: 'utf8', env })
    const theirs = spawnSync(python, [join(__dirname, 'spikingjelly_workloads.py'), name, input, steps, String(w.timeSteps), String(w.batch)], { encoding: 'utf8', env })
    if (ours.status !== 0) throw new Error(`dualstream ${name}: ${ours.stderr}`)
    if (theirs.status !== 0) throw new Error(`spikingjelly ${name}: ${theirs.stderr}`)
    const a = JSON.parse(ours.stdout.trim().split('\n').at(-1)!)
    const b = JSON.parse(theirs.stdout.trim().split('\n').at(-1)!)
    const row = {
      workload: name, timeSteps: w.timeSteps, batch: w.batch, ours: a, spikingjelly: b,
      trainRatio: a.trainStepMs / b.trainStepMs, inferenceRatio: a.inferenceMs / b.inferenceMs, memoryRatio: a.peakRssMiB / b.peakRssMiB,
    }
    console.log(`${name} T=${w.timeSteps} N=${w.batch}: train step ${a.trainStepMs.toFixed(1)} vs ${b.trainStepMs.toFixed(1)} ms (x${(1 / row.trainRatio).toFixed(2)} faster), ` +
      `inference ${a.inferenceMs.toFixed(1)} vs ${b.inferenceMs.toFixed(1)} ms (x${(1 / row.inferenceRatio).toFixed(2)}), ` +
      `peak RSS ${a.peakRssMiB.toFixed(0)} vs ${b.peakRssMiB.toFixed(0)} MiB (${(100 * row.memoryRatio).toFixed(0)} %)`)
    rows.push(row)
  }
  record(values.scaling ? 'compare-scaling' : 'compare', `npm run bench:compare -- --steps ${steps}${values.scaling ? ' --scaling' : ''}`, { rows, ours: 'compiled JavaScript (benches/compiled.ts), not tsx' })
}
