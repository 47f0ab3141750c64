// The paper's energy table (Table 2) at our scale: accuracy next to AC, MAC and Dynamic
// Consumption for small residual SNNs trained on Fashion-MNIST (FSNN and DSNN modes of DST
// networks, and SEW ADD), plus the ImageNet-shape operation counts of the zoo's DSNN-18..101 and
// SEW-ResNet-18 (random weights without zero-init, one random image: counts, not accuracy).
// Usage: npm run bench:energy -- [--train-samples N] [--epochs E] [--blocks B] [--skip-imagenet]
// Prints the tables (Markdown) and appends the record to benches/results/energy-table.jsonl.
import { parseArgs } from 'node:util'
import type { EnergyReport, SmallNetOptions, ZooNet } from '../ts/index'
import {
  adam,
  dsnn18,
  dsnn34,
  dsnn50,
  dsnn101,
  loadFashionMnist,
  sequential,
  sewResnet18,
  smallDsnn,
  TensorDataset,
} from '../ts/index'
import { record } from './record'

const { values } = parseArgs({
  options: {
    'train-samples': { type: 'string', default: '12000' },
    epochs: { type: 'string', default: '1' },
    blocks: { type: 'string', default: '10' },
    'batch-size': { type: 'string', default: '64' },
    'skip-imagenet': { type: 'boolean', default: false },
  },
})
const trainSamples = Number(values['train-samples'])
const epochs = Number(values.epochs)
const blocks = Number(values.blocks)
const batchSize = Number(values['batch-size'])
const WIDTHS = [8, 16, 32]
const SEED = 1
const command = `npm run bench:energy -- --train-samples ${trainSamples} --epochs ${epochs} --blocks ${blocks}${values['skip-imagenet'] ? ' --skip-imagenet' : ''}`

interface Row {
  variant: string
  mode: 'fsnn' | 'dsnn'
  accuracy: number
  ac: number
  mac: number
  dynamicMj: number
  worstMj: number
  trainSeconds: number
}

const g = (v: number) => (v / 1e6).toFixed(2)
const row = (variant: string, r: EnergyReport, trainSeconds: number): Row => ({
  variant,
  mode: r.mode,
  accuracy: r.accuracy,
  ac: r.totals.ac,
  mac: r.totals.mac,
  dynamicMj: r.totals.dynamicMj,
  worstMj: r.totals.worstMj,
  trainSeconds,
})

async function small(): Promise<Row[]> {
  const data = loadFashionMnist()
  const train = data.train.sample(trainSamples, SEED)
  const rows: Row[] = []
  const variants: [string, Omit<SmallNetOptions, 'inputShape' | 'classes'>][] = [
    ['DST, g = IAND', { family: 'dsnn', connect: 'iand' }],
    ['DST, g = OR', { family: 'dsnn', connect: 'or' }],
    ['DST, g = XOR', { family: 'dsnn', connect: 'xor' }],
    ['SEW ADD', { family: 'sew', connect: 'add' }],
  ]
  for (const [variant, net] of variants) {
    const z = smallDsnn({ ...net, blocks, inputShape: [1, 28, 28], classes: 10, widths: WIDTHS })
    const model = sequential(z.layers, { ...z, seed: SEED })
    const started = performance.now()
    await model.fit(train, { epochs, batchSize, optimizer: adam({ lr: 1e-2 }), schedule: 'cosine', seed: SEED })
    const seconds = (performance.now() - started) / 1000
    for (const mode of net.family === 'dsnn' ? (['fsnn', 'dsnn'] as const) : (['fsnn'] as const)) {
      const r = await model.energy(data.test, { mode, batchSize: 256 })
      rows.push(row(variant, r, seconds))
      console.error(
        `${variant} ${mode}: ${(100 * r.accuracy).toFixed(2)} %, AC ${g(r.totals.ac)} M, MAC ${g(r.totals.mac)} M, ${r.totals.dynamicMj.toExponential(3)} mJ`,
      )
    }
    await model.dispose()
  }
  return rows
}

interface Counted {
  net: string
  mode: 'fsnn' | 'dsnn'
  ac: number
  mac: number
  dynamicMj: number
  worstMj: number
}

async function imagenet(): Promise<Counted[]> {
  let s = 7
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
  const image = new TensorDataset({
    name: 'random image',
    images: Float32Array.from({ length: 3 * 224 * 224 }, () => 4 * rand() - 2),
    labels: new Uint32Array(1),
    sampleShape: [3, 224, 224],
    numClasses: 1000,
  })
  const out: Counted[] = []
  const nets: [string, ZooNet, ('fsnn' | 'dsnn')[]][] = [
    ['DSNN-18', dsnn18({ zeroInit: false }), ['fsnn', 'dsnn']],
    ['DSNN-34', dsnn34({ zeroInit: false }), ['fsnn', 'dsnn']],
    ['DSNN-50', dsnn50({ zeroInit: false }), ['fsnn', 'dsnn']],
    ['DSNN-101', dsnn101({ zeroInit: false }), ['fsnn', 'dsnn']],
    ['SEW-ResNet-18 (ADD)', sewResnet18({ zeroInit: false }), ['fsnn']],
  ]
  for (const [name, z, modes] of nets) {
    const model = sequential(z.layers, { timeSteps: z.timeSteps, inputShape: z.inputShape, seed: 1 })
    for (const mode of modes) {
      const r = await model.energy(image, { mode, batchSize: 1 })
      out.push({
        net: name,
        mode,
        ac: r.totals.ac,
        mac: r.totals.mac,
        dynamicMj: r.totals.dynamicMj,
        worstMj: r.totals.worstMj,
      })
    }
    await model.dispose()
  }
  return out
}

async function main(): Promise<void> {
  const rows = await small()
  const counted = values['skip-imagenet'] ? [] : await imagenet()
  const budget = `${trainSamples} training images (seeded sample of the Fashion-MNIST train split), ${epochs} epoch(s), batch ${batchSize}, Adam lr 1e-2 with cosine annealing, smallDsnn layout with ${blocks} blocks, widths ${WIDTHS.join('/')}, T = 4, IF neurons, zero-init`
  let md = `# Energy: accuracy, AC, MAC and Dynamic Consumption (the paper's Table 2 at our scale)\n\n`
  md += `Command: \`${command}\`. Budget: ${budget}. Counted on all 10,000 Fashion-MNIST test images, per image, fp32 45 nm energies (0.9 pJ per AC, 4.6 pJ per MAC). `
  md += `Dynamic Consumption (DC) uses the measured firing rates; "worst" assumes every neuron fires at every step.\n\n`
  md += `| network | mode | accuracy | AC (M) | MAC (M) | DC (nJ) | worst (nJ) |\n|---|---|---|---|---|---|---|\n`
  for (const r of rows) {
    md += `| ${r.variant} | ${r.variant.startsWith('SEW') ? '-' : r.mode.toUpperCase()} | ${(100 * r.accuracy).toFixed(2)} % | ${g(r.ac)} | ${g(r.mac)} | ${(r.dynamicMj * 1e6).toFixed(1)} | ${(r.worstMj * 1e6).toFixed(1)} |\n`
  }
  if (counted.length) {
    md += `\n## ImageNet shapes (operation counts only)\n\n3x224x224, T = 4, one random image, random weights without zero-init (so the branch neurons fire); `
    md += `the firing rates of random weights are not those of trained networks, so AC and DC differ from the paper's; MAC does not depend on rates. `
    md += `Paper (Table 2): FSNN-18 AC 1.69 G / MAC 0.12 G / 2.07 mJ, DSNN-18 1.69 G / 0.20 G / 2.44 mJ, SEW-18 0.51 G / 2.75 G / 13.11 mJ; DSNN-50/101 MAC 1.37 G.\n\n`
    md += `| network | mode | AC (G) | MAC (G) | DC (mJ) | worst (mJ) |\n|---|---|---|---|---|---|\n`
    for (const c of counted) {
      md += `| ${c.net} | ${c.net.startsWith('SEW') ? '-' : c.mode.toUpperCase()} | ${(c.ac / 1e9).toFixed(3)} | ${(c.mac / 1e9).toFixed(4)} | ${c.dynamicMj.toFixed(2)} | ${c.worstMj.toFixed(2)} |\n`
    }
  }
  process.stdout.write(md)
  record('energy-table', command, { budget, rows, imagenet: counted })
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
