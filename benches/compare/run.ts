// Side by side with SpikingJelly on the reference workloads W1, W2 and SF (benches/workloads.ts):
// the same batch, both engines in the same run, 2 threads each; prints ratios (ours / theirs) and
// records them.
//   npm run bench:compare [-- --steps 10] [--rounds 3] [--workloads W1,W2,SF,SF384]
// Each round runs both engines once per workload, in alternating order (ours first in odd
// rounds, SpikingJelly first in even ones), and takes the ratio within the round: this host's
// speed swings by 20 % and more between minutes, which moves two runs taken minutes apart but
// moves both halves of one round alike. The medians of the rounds' ratios are reported, with
// their range; every round's raw figures are recorded.
//   npm run bench:compare -- --scaling [--steps 3]   W1 at T = 4, 8, 16 (N = 32) and N = 8, 16, 32 (T = 4)
// W1 and W2 need the Python environment of scripts/reference/make-fixtures.sh (SpikingJelly
// 0.0.0.0.14): `scripts/reference/make-fixtures.sh --venv-only` creates it in .venv-reference/.
// W3 (the SEW 7B-Net at [T = 16, N = 8, 2, 128, 128]: --workloads W3 --steps 1 --rounds 1, several
// GiB in SpikingJelly), SF and SF384 (SpikingJelly 2's Spikformer) run from the interop environment:
// $DUALSTREAM_PYTHON, else .venv-interop/ (scripts/python/setup-venv.sh creates it).
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { withCompiled } from '../compiled'
import { record } from '../record'
import { syntheticBatch, workload } from '../workloads'

const { values } = parseArgs({
  options: {
    steps: { type: 'string' },
    rounds: { type: 'string' },
    scaling: { type: 'boolean', default: false },
    workloads: { type: 'string', default: 'W1,W2,SF' },
  },
})
const steps = values.steps ?? (values.scaling ? '3' : '10')
const rounds = Number(values.rounds ?? (values.scaling ? '1' : '3'))
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`--rounds: expected a positive integer, got ${values.rounds}`)
  process.exit(2)
}
const root = join(__dirname, '..', '..')
const names = (values.workloads ?? 'W1,W2,SF').split(',')
for (const name of names) {
  if (!['W1', 'W2', 'W3', 'SF', 'SF384'].includes(name)) {
    console.error(`--workloads: expected names among W1, W2, W3, SF, SF384, got ${name}`)
    process.exit(2)
  }
}
/** The Python that runs workload `name` in SpikingJelly: 0.0.0.0.14 for W1/W2, 2 for Spikformer and W3. */
function pythonFor(name: string): string {
  const [python, setup] =
    name.startsWith('SF') || name === 'W3'
      ? [process.env.DUALSTREAM_PYTHON ?? join(root, '.venv-interop', 'bin', 'python'), 'scripts/python/setup-venv.sh']
      : [join(root, '.venv-reference', 'bin', 'python'), 'scripts/reference/make-fixtures.sh --venv-only']
  if (!existsSync(python)) {
    console.error(`no ${python}: run ${setup} first (installs torch and spikingjelly from PyPI)`)
    process.exit(2)
  }
  return python
}
const runs: [string, number?, number?][] = values.scaling
  ? [
      ['W1', 4, 8],
      ['W1', 4, 16],
      ['W1', 4, 32],
      ['W1', 8, 32],
      ['W1', 16, 32],
    ]
  : names.map((name): [string] => [name])
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
    const runOurs = () =>
      figures(
        `dualstream ${name}`,
        spawnSync(process.execPath, [script, '--only', name, '--steps', steps, ...sizes], { encoding: 'utf8', env }),
      )
    const python = pythonFor(name)
    const runTheirs = () =>
      figures(
        `spikingjelly ${name}`,
        spawnSync(
          python,
          [join(__dirname, 'spikingjelly_workloads.py'), name, input, steps, String(w.timeSteps), String(w.batch)],
          { encoding: 'utf8', env },
        ),
      )
    const taken: Round[] = []
    for (let r = 0; r < rounds; r++) {
      let a: Figures, b: Figures
      if (r % 2 === 0) {
        a = runOurs()
        b = runTheirs()
      } else {
        b = runTheirs()
        a = runOurs()
      }
      taken.push({
        ours: a,
        spikingjelly: b,
        trainRatio: a.trainStepMs / b.trainStepMs,
        inferenceRatio: a.inferenceMs / b.inferenceMs,
        memoryRatio: a.peakRssMiB / b.peakRssMiB,
      })
      console.log(
        `${name} round ${r + 1}/${rounds}: train step ${a.trainStepMs.toFixed(1)} vs ${b.trainStepMs.toFixed(1)} ms (x${(b.trainStepMs / a.trainStepMs).toFixed(2)} faster), ` +
          `inference ${a.inferenceMs.toFixed(1)} vs ${b.inferenceMs.toFixed(1)} ms (x${(b.inferenceMs / a.inferenceMs).toFixed(2)}), ` +
          `peak RSS ${a.peakRssMiB.toFixed(0)} vs ${b.peakRssMiB.toFixed(0)} MiB (${((100 * a.peakRssMiB) / b.peakRssMiB).toFixed(0)} %)`,
      )
    }
    // The round whose training ratio is the median stands for the workload (its raw figures
    // are the row's `ours` and `spikingjelly`, as in single-round records).
    const mid = [...taken].sort((p, q) => p.trainRatio - q.trainRatio)[(taken.length - 1) >> 1]
    const row = {
      workload: name,
      timeSteps: w.timeSteps,
      batch: w.batch,
      ours: mid.ours,
      spikingjelly: mid.spikingjelly,
      trainRatio: median(taken.map((t) => t.trainRatio)),
      inferenceRatio: median(taken.map((t) => t.inferenceRatio)),
      memoryRatio: median(taken.map((t) => t.memoryRatio)),
      rounds: taken,
    }
    const speedups = (key: 'trainRatio' | 'inferenceRatio') => {
      const xs = taken.map((t) => 1 / t[key])
      return `x${(1 / row[key]).toFixed(2)} (rounds x${Math.min(...xs).toFixed(2)}-${Math.max(...xs).toFixed(2)})`
    }
    console.log(
      `${name} T=${w.timeSteps} N=${w.batch}, median of ${rounds} round(s): train step ${speedups('trainRatio')} faster, inference ${speedups('inferenceRatio')}, ` +
        `peak RSS ${(100 * row.memoryRatio).toFixed(0)} % of SpikingJelly's`,
    )
    rows.push(row)
  }
  record(
    values.scaling ? 'compare-scaling' : 'compare',
    `npm run bench:compare -- --steps ${steps} --rounds ${rounds}${values.scaling ? ' --scaling' : ` --workloads ${values.workloads}`}`,
    {
      rows,
      ours: 'compiled JavaScript (benches/compiled.ts), not tsx',
    },
  )
}

/** One engine's figures on one workload (the last JSON line it printed). */
interface Figures {
  trainStepMs: number
  inferenceMs: number
  peakRssMiB: number
  [key: string]: unknown
}

interface Round {
  ours: Figures
  spikingjelly: Figures
  trainRatio: number
  inferenceRatio: number
  memoryRatio: number
}

function figures(what: string, run: ReturnType<typeof spawnSync>): Figures {
  if (run.status !== 0) throw new Error(`${what}: ${run.stderr}`)
  return JSON.parse(String(run.stdout).trim().split('\n').at(-1)!)
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}
