// The paper's spike-transformer experiment (Table 4: Spikformer with ADD, IAND and IAND + DST
// residuals) at a CPU scale: a small Spikformer on 28x28 Fashion-MNIST, every variant trained
// with one budget for several seeds, then accuracy (FSNN, and DSNN for DST) on a test sample and
// AC, MAC and energy per sample (fp32 costs) from the energy report.
// Usage: npm run bench:spikformer -- [--train-samples N] [--test-samples N] [--energy-samples N]
//        [--epochs E] [--batch-size B] [--lr LR] [--seeds S] [--time-steps T]
// (--seeds 3 runs the seeds 1, 2 and 3.)
// Appends one record per run (variant, seed) to benches/results/spikformer-table4.jsonl as it
// finishes, then prints the table (Markdown) and appends it as a last record.
import { parseArgs } from 'node:util'
import type { EnergyReport, Evaluation } from '../ts/index'
import { adam, loadFashionMnist, sequential, spikformer } from '../ts/index'
import { record } from './record'

const { values } = parseArgs({
  options: {
    'train-samples': { type: 'string', default: '8000' },
    'test-samples': { type: 'string', default: '2000' },
    'energy-samples': { type: 'string', default: '500' },
    epochs: { type: 'string', default: '2' },
    'batch-size': { type: 'string', default: '32' },
    lr: { type: 'string', default: '0.01' },
    seeds: { type: 'string', default: '3' },
    'time-steps': { type: 'string', default: '4' },
  },
})
const trainSamples = Number(values['train-samples'])
const testSamples = Number(values['test-samples'])
const energySamples = Number(values['energy-samples'])
const epochs = Number(values.epochs)
const batchSize = Number(values['batch-size'])
const lr = Number(values.lr)
const seeds = Array.from({ length: Number(values.seeds) }, (_, i) => i + 1)
const timeSteps = Number(values['time-steps'])
/** The CLI's smallSpikformer: 7x7 tokens of 64 channels, 4 heads, MLP ratio 2, two blocks. */
const SIZE = { depth: 2, dim: 64, heads: 4, mlpRatio: 2 }

const data = loadFashionMnist()
// One training and one test sample for every run: the seeds change the initial weights and
// the batch order only.
const train = data.train.sample(trainSamples, 1)
const test = data.test.sample(testSamples, 2)
const energyData = data.test.sample(energySamples, 3)

type Variant = 'ADD' | 'IAND' | 'IAND + DST'
const VARIANTS: Variant[] = ['ADD', 'IAND', 'IAND + DST']

interface Costs {
  ac: number
  mac: number
  mj: number
}

interface Run {
  variant: Variant
  seed: number
  trainSeconds: number
  /** Test accuracy of the network as trained (the spike head for DST). */
  fsnn: number
  /** DST only: the accumulation head. */
  dsnn?: number
  energy: { fsnn: Costs; dsnn?: Costs }
  /** Mean firing rate over the neuron layers in the fsnn evaluation. */
  meanRate: number
}

const costs = (r: EnergyReport): Costs => ({ ac: r.totals.ac, mac: r.totals.mac, mj: r.totals.dynamicMj })

async function run(variant: Variant, seed: number): Promise<Run> {
  const net = spikformer({
    ...SIZE,
    inputShape: [1, 28, 28],
    classes: 10,
    timeSteps,
    connect: variant === 'ADD' ? 'add' : 'iand',
    dst: variant === 'IAND + DST',
  })
  const model = sequential(net.layers, { ...net, seed })
  const started = performance.now()
  await model.fit(train, { epochs, batchSize, optimizer: adam({ lr }), schedule: 'cosine', seed })
  const trainSeconds = (performance.now() - started) / 1000
  const fsnn: Evaluation = await model.evaluate(test, { mode: 'fsnn' })
  const dsnn = model.heads === 2 ? await model.evaluate(test, { mode: 'dsnn' }) : undefined
  const energy: Run['energy'] = { fsnn: costs(await model.energy(energyData, { mode: 'fsnn', preset: 'fp32' })) }
  if (dsnn) energy.dsnn = costs(await model.energy(energyData, { mode: 'dsnn', preset: 'fp32' }))
  const neurons = fsnn.firingRates.filter((f) => !f.name.endsWith('.out'))
  const meanRate = neurons.reduce((a, f) => a + f.rate, 0) / Math.max(1, neurons.length)
  await model.dispose()
  const r: Run = { variant, seed, trainSeconds, fsnn: fsnn.accuracy, dsnn: dsnn?.accuracy, energy, meanRate }
  console.error(
    `${variant} seed ${seed}: ${(100 * r.fsnn).toFixed(2)} %${dsnn ? ` fsnn / ${(100 * dsnn.accuracy).toFixed(2)} % dsnn` : ''}, ` +
      `${(energy.fsnn.mj * 1e3).toFixed(2)} uJ, trained in ${trainSeconds.toFixed(0)} s`,
  )
  return r
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length
const std = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)))
const pct = (xs: number[]) => `${(100 * mean(xs)).toFixed(2)} ± ${(100 * std(xs)).toFixed(2)} %`
const num = (xs: number[], scale = 1, digits = 0) => (mean(xs) * scale).toFixed(digits)

const command =
  `npm run bench:spikformer -- --train-samples ${trainSamples} --test-samples ${testSamples} ` +
  `--energy-samples ${energySamples} --epochs ${epochs} --batch-size ${batchSize} --lr ${lr} ` +
  `--seeds ${seeds.length} --time-steps ${timeSteps}`
const budget =
  `Spikformer-${SIZE.depth}-${SIZE.dim} (${SIZE.heads} heads, MLP ratio ${SIZE.mlpRatio}, patch 4: 7x7 tokens), T = ${timeSteps}; ` +
  `${trainSamples} Fashion-MNIST training images (seeded sample), ${epochs} epoch(s), batch ${batchSize}, ` +
  `Adam lr ${lr} with cosine annealing; accuracy on ${testSamples} test images, energy (fp32: 0.9 pJ/AC, 4.6 pJ/MAC) on ${energySamples}`

async function main(): Promise<void> {
  const rows: Run[] = []
  for (const seed of seeds) {
    for (const v of VARIANTS) {
      const r = await run(v, seed)
      rows.push(r)
      record('spikformer-table4', command, { budget, run: r })
    }
  }
  let md = `# Spikformer: ADD, IAND, IAND + DST (the paper's Table 4 at a small scale)\n\nCommand: \`${command}\`. ${budget}.\n\n`
  md +=
    '| variant | eval | accuracy (mean ± sd over seeds) | AC / sample | MAC / sample | energy / sample |\n|---|---|---|---|---|---|\n'
  for (const v of VARIANTS) {
    const rs = rows.filter((r) => r.variant === v)
    const million = (xs: number[]) => `${num(xs, 1e-6, 2)} M`
    const line = (evalMode: string, acc: number[], c: Costs[]) =>
      `| ${v} | ${evalMode} | ${pct(acc)} | ${million(c.map((x) => x.ac))} | ${million(c.map((x) => x.mac))} | ${num(
        c.map((x) => x.mj),
        1e3,
        2,
      )} uJ |\n`
    md += line(
      v === 'IAND + DST' ? 'FSNN' : '-',
      rs.map((r) => r.fsnn),
      rs.map((r) => r.energy.fsnn),
    )
    if (v === 'IAND + DST') {
      md += line(
        'DSNN',
        rs.map((r) => r.dsnn ?? 0),
        rs.map((r) => r.energy.dsnn!),
      )
    }
  }
  process.stdout.write(md)
  record('spikformer-table4', command, { budget, table: md })
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
