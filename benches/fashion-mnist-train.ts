// The default `dualstream train` (the Fashion-MNIST recipe) end to end: runs the real CLI and
// records its accuracies and time, with the goal it is held to (>= 93 % full-spike Fashion-MNIST
// test accuracy within 10 minutes of wall time on 2 cores).
//   npm run bench:train [-- extra CLI flags, e.g. --seed 1]
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import { record } from './record'

const extra = process.argv.slice(2)
const args = [join(__dirname, '..', 'dist', 'cli.js'), 'train', '--json', ...extra]
const started = performance.now()
const r = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] })
const wallSeconds = (performance.now() - started) / 1000
if (r.status !== 0) {
  console.error(`dualstream train failed with status ${r.status}`)
  process.exit(1)
}
const metrics = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
record('fashion-mnist-train', `dualstream train --json ${extra.join(' ')}`.trim(), {
  testAccuracy: metrics.testAccuracy,
  dsnnTestAccuracy: metrics.dsnnTestAccuracy,
  seed: metrics.seed,
  epochs: metrics.epochs,
  trainSeconds: metrics.seconds,
  wallSeconds,
  goal: { accuracy: 0.93, wallSeconds: 600 },
  met: metrics.testAccuracy >= 0.93 && wallSeconds <= 600,
  metrics,
})
