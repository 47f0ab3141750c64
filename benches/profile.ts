// Per-layer profile of one training step (forward / backward split) and one inference batch of
// each reference workload, with the bytes kept for BPTT: writes the model specs of
// benches/workloads.ts and runs `examples/workload_profile` (Rust, no addon) on each.
// With --cli, the network of the CLI's Fashion-MNIST recipe (`dualstream train`: convDsnn with three
// blocks at T = 2, batch 128; the profile trains it with Adam) on real Fashion-MNIST batches instead (60 batches of the training set in a seeded order, after 100
// warm-up steps), the profile behind the end-to-end training figures.
//   npm run bench:profile [-- --steps 6] [-- --cli]   (Markdown tables; see benches/results/profile.md)
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { convDsnn, loadFashionMnist } from '../ts/index'
import { permutation, Rng } from '../ts/internal'
import { WORKLOADS } from './workloads'

const { values } = parseArgs({
  options: { steps: { type: 'string', default: '6' }, cli: { type: 'boolean', default: false } },
})

/** The CLI's default run as a workload, with its input and label files. */
function cliWorkload(dir: string): { name: string; spec: object; batch: number; files: string[] } {
  const batch = 128
  const count = 60 * batch
  const { train } = loadFashionMnist()
  const order = permutation(train.length, new Rng(0)).subarray(0, count)
  const x = new Float32Array(count * 784)
  const y = new Uint32Array(count)
  order.forEach((s, k) => {
    x.set(train.images.subarray(s * 784, (s + 1) * 784), k * 784)
    y[k] = train.labels[s]
  })
  const files = [join(dir, 'x.f32'), join(dir, 'y.u32')]
  writeFileSync(files[0], x)
  writeFileSync(files[1], y)
  const spec = { timeSteps: 2, inputShape: [1, 28, 28], encoding: 'direct', layers: convDsnn({ blocks: 3 }) }
  return { name: 'CLI default (dsnn3 at T = 2, Fashion-MNIST)', spec, batch, files }
}
const dir = mkdtempSync(join(tmpdir(), 'dualstream-profile-'))
try {
  const build = spawnSync('cargo', ['build', '--release', '-p', 'dualstream-core', '--example', 'workload_profile'], {
    stdio: 'inherit',
  })
  if (build.status !== 0) process.exit(build.status ?? 1)
  const runs = values.cli
    ? [cliWorkload(dir)]
    : WORKLOADS.map((w) => ({
        name: w.name,
        spec: { timeSteps: w.timeSteps, inputShape: w.sampleShape, encoding: w.encoding, layers: w.layers },
        batch: w.batch,
        files: [] as string[],
      }))
  for (const w of runs) {
    const spec = join(dir, 'spec.json')
    writeFileSync(spec, JSON.stringify(w.spec))
    const bin = join(__dirname, '..', 'target', 'release', 'examples', 'workload_profile')
    const r = spawnSync(bin, [spec, values.steps!, String(w.batch), ...w.files], {
      encoding: 'utf8',
      env: { ...process.env, RAYON_NUM_THREADS: '2' },
    })
    if (r.status !== 0) throw new Error(`${w.name}: ${r.stderr}`)
    process.stdout.write(r.stdout.replace(spec, w.name))
  }
} finally {
  rmSync(dir, { recursive: true, force: true })
}
