// The paper's claims at small scale, on Fashion-MNIST with one training budget for every variant:
//   depth:   Spiking ResNet vs FSNN (DST) vs DSNN at 4, 10 and 20 blocks (paper Figure 3)
//   connect: g in AND, IAND, OR, XOR (DST; FSNN and DSNN modes) and SEW ADD, with the firing
//            rate of each block's output (paper Table 3, Figure 5)
// Usage: npm run bench:claims -- [depth|connect|all] [--train-samples N] [--epochs E] [--batch-size B]
// Prints each experiment's table (Markdown) and appends its record to benches/results/dst-claims.jsonl.
import { parseArgs } from 'node:util'
import type { Evaluation, SmallNetOptions } from '../ts/index'
import { adam, loadFashionMnist, sequential, smallDsnn } from '../ts/index'
import { record } from './record'

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    'train-samples': { type: 'string', default: '12000' },
    epochs: { type: 'string', default: '2' },
    'batch-size': { type: 'string', default: '64' },
  },
})
const experiment = positionals[0] ?? 'all'
if (!['depth', 'connect', 'all'].includes(experiment))
  throw new Error(`unknown experiment ${experiment}: expected depth, connect or all`)
const trainSamples = Number(values['train-samples'])
const epochs = Number(values.epochs)
const batchSize = Number(values['batch-size'])
const WIDTHS = [8, 16, 32]
const SEED = 1

const data = loadFashionMnist()
const train = data.train.sample(trainSamples, SEED)
const test = data.test

interface Run {
  variant: string
  blocks: number
  seconds: number
  fsnn?: Evaluation
  dsnn?: Evaluation
  plain?: Evaluation
}

async function run(variant: string, net: Omit<SmallNetOptions, 'inputShape' | 'classes'>): Promise<Run> {
  const z = smallDsnn({ ...net, inputShape: [1, 28, 28], classes: 10, widths: WIDTHS })
  const model = sequential(z.layers, { ...z, seed: SEED })
  const started = performance.now()
  await model.fit(train, { epochs, batchSize, optimizer: adam({ lr: 1e-2 }), schedule: 'cosine', seed: SEED })
  const seconds = (performance.now() - started) / 1000
  const r: Run = { variant, blocks: z.blocks, seconds }
  if (net.family === 'dsnn') {
    r.fsnn = await model.evaluate(test, { mode: 'fsnn' })
    r.dsnn = await model.evaluate(test, { mode: 'dsnn' })
  } else {
    r.plain = await model.evaluate(test)
  }
  await model.dispose()
  const pct = (e?: Evaluation) => (e ? `${(100 * e.accuracy).toFixed(2)} %` : '-')
  console.error(
    `${variant} (${z.blocks} blocks): ${pct(r.plain ?? r.fsnn)}${r.dsnn ? ` fsnn / ${pct(r.dsnn)} dsnn` : ''} in ${seconds.toFixed(0)} s`,
  )
  return r
}

function blockRates(e: Evaluation): number[] {
  return e.firingRates.filter((f) => f.name.endsWith('.out')).map((f) => f.rate)
}

const budget = `${trainSamples} training images (seeded sample of the Fashion-MNIST train split), ${epochs} epoch(s), batch ${batchSize}, Adam lr 1e-2 with cosine annealing, T = 4, IF neurons, widths ${WIDTHS.join('/')}, zero-init; test on all 10,000 test images`
const pct = (e?: Evaluation) => (e ? (100 * e.accuracy).toFixed(2) : '-')

const command = (experiment: string) =>
  `npm run bench:claims -- ${experiment} --train-samples ${trainSamples} --epochs ${epochs}`

/** Prints an experiment's table and appends its rows to the benchmark records. */
function report(experiment: string, md: string, rows: object[]): void {
  process.stdout.write(md)
  record('dst-claims', command(experiment), { experiment, budget, rows })
}

async function depth(): Promise<void> {
  const rows: Run[] = []
  for (const blocks of [4, 10, 20]) {
    rows.push(await run('Spiking ResNet', { family: 'spikingResnet', blocks }))
    rows.push(await run('Spiking ResNet + DST', { family: 'dsnn', connect: 'spikingResnet', blocks }))
  }
  let md = `# Depth: Spiking ResNet vs FSNN (DST) vs DSNN\n\nCommand: \`${command('depth')}\`. Budget: ${budget}.\n\n`
  md += '| blocks | Spiking ResNet | FSNN (DST) | DSNN | train seconds (plain / DST) |\n|---|---|---|---|---|\n'
  for (const b of [4, 10, 20]) {
    const plain = rows.find((r) => r.blocks === b && r.plain)!
    const dst = rows.find((r) => r.blocks === b && r.fsnn)!
    md += `| ${b} | ${pct(plain.plain)} % | ${pct(dst.fsnn)} % | ${pct(dst.dsnn)} % | ${plain.seconds.toFixed(0)} / ${dst.seconds.toFixed(0)} |\n`
  }
  report(
    'depth',
    md,
    rows.map((r) => ({
      variant: r.variant,
      blocks: r.blocks,
      seconds: r.seconds,
      plain: r.plain?.accuracy,
      fsnn: r.fsnn?.accuracy,
      dsnn: r.dsnn?.accuracy,
    })),
  )
}

async function connect(): Promise<void> {
  const rows: (Run & { connect: string })[] = []
  for (const g of ['and', 'iand', 'or', 'xor'] as const) {
    // AND cannot be an identity at zero init (S = 0 silences O), so it starts from random BN gammas.
    rows.push({
      connect: g,
      ...(await run(`DST ${g}`, { family: 'dsnn', connect: g, blocks: 10, zeroInit: g !== 'and' })),
    })
  }
  rows.push({ connect: 'add', ...(await run('SEW ADD', { family: 'sew', connect: 'add', blocks: 10 })) })
  let md = `# Element-wise functions g (10 blocks)\n\nCommand: \`${command('connect')}\`. Budget: ${budget}. `
  md +=
    'AND starts without zero-init (at zero init S = 0 makes AND output silence). Block output rate = mean of O_l over the test set '
  md += '(for SEW ADD the mean of S + O, which is not a spike).\n\n'
  md +=
    '| g | FSNN | DSNN | SEW (ADD) | mean block-output rate | block-output rate per block |\n|---|---|---|---|---|---|\n'
  for (const r of rows) {
    const e = r.fsnn ?? r.plain!
    const rates = blockRates(e)
    const mean = rates.reduce((a, b) => a + b, 0) / rates.length
    md += `| ${r.connect} | ${r.fsnn ? `${pct(r.fsnn)} %` : '-'} | ${r.dsnn ? `${pct(r.dsnn)} %` : '-'} | ${r.plain ? `${pct(r.plain)} %` : '-'} | ${mean.toFixed(3)} | ${rates.map((x) => x.toFixed(2)).join(' ')} |\n`
  }
  report(
    'connect',
    md,
    rows.map((r) => ({
      connect: r.connect,
      seconds: r.seconds,
      fsnn: r.fsnn?.accuracy,
      dsnn: r.dsnn?.accuracy,
      sew: r.plain?.accuracy,
      blockRates: blockRates(r.fsnn ?? r.plain!),
    })),
  )
}

async function main(): Promise<void> {
  if (experiment === 'depth' || experiment === 'all') await depth()
  if (experiment === 'connect' || experiment === 'all') await connect()
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
