// Runs the reference workloads in dualstream: median time of a training step (forward, BPTT,
// SGD) and of an inference batch (full-spike: AAP removed), peak resident memory, firing rates.
//   npm run bench:workloads [-- --steps 20]      (one workload per process, so peak RSS is its own;
//   the processes run compiled JavaScript, see compiled.ts)
import { spawnSync } from 'node:child_process'
import { parseArgs } from 'node:util'
import { withCompiled } from './compiled'
import { record } from './record'
import { syntheticBatch, trainableModel, WORKLOADS, workload } from './workloads'

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '20' },
    only: { type: 'string' },
    'time-steps': { type: 'string' },
    batch: { type: 'string' },
  },
})
const steps = Number(values.steps)

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

async function measure(name: string): Promise<Record<string, unknown>> {
  const num = (v: string | undefined) => (v === undefined ? undefined : Number(v))
  const w = workload(name, num(values['time-steps']), num(values.batch))
  const model = trainableModel(w)
  const { x, y } = syntheticBatch(w)
  const train: number[] = []
  for (let i = 0; i < steps + 2; i++) {
    const t0 = performance.now()
    await model.trainBatch(x, y)
    if (i >= 2) train.push(performance.now() - t0) // the first steps size the buffers
  }
  const rates = model.firingRates()
  const deploy = model.heads === 2 ? await model.toFullSpike() : model
  const infer: number[] = []
  for (let i = 0; i < steps + 2; i++) {
    const t0 = performance.now()
    await deploy.predict(x, w.batch)
    if (i >= 2) infer.push(performance.now() - t0)
  }
  return {
    workload: name,
    timeSteps: w.timeSteps,
    batch: w.batch,
    trainStepMs: median(train),
    inferenceMs: median(infer),
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
    firingRates: rates,
  }
}

async function main(): Promise<void> {
  if (values.only) {
    process.stdout.write(`${JSON.stringify(await measure(values.only))}\n`)
    return
  }
  const results = withCompiled(__filename, (script) =>
    WORKLOADS.map((w) => {
      const r = spawnSync(process.execPath, [script, '--only', w.name, '--steps', String(steps)], { encoding: 'utf8' })
      if (r.status !== 0) throw new Error(`${w.name}: ${r.stderr}`)
      return JSON.parse(r.stdout.trim().split('\n').at(-1)!)
    }),
  )
  for (const r of results)
    console.log(
      `${r.workload}: train step ${r.trainStepMs.toFixed(1)} ms, inference ${r.inferenceMs.toFixed(1)} ms, peak RSS ${r.peakRssMiB.toFixed(0)} MiB`,
    )
  record('workloads', `npm run bench:workloads -- --steps ${steps}`, { threads: 'rayon default (2 cores)', results })
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
