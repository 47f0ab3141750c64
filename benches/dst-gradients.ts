// Appendix C.3 of the paper at our scale: gradient norms at every block of a 50-layer network at
// initialisation, the plain full-spike network (AAP off) against the DSNN (AAP on), with the
// Sigmoid surrogate's alpha set to provoke vanishing (sg'(0) = alpha/4 = 0.5) and exploding
// (sg'(0) = 2) gradients, for each element-wise function g.
//   npm run bench:gradients   prints the table (Markdown), appends to benches/results/dst-gradients.jsonl
//                             and draws benches/results/dst-gradients-*.svg
import { renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { DualConnect, LayerSpec } from '../ts/index'
import {
  batchNorm2d,
  conv2d,
  dualBasicBlock,
  dualStream,
  ifNode,
  loadFashionMnist,
  maxPool2d,
  sequential,
  sgd,
  surrogate,
} from '../ts/index'
import { lineChartSvg } from '../ts/plot'
import { record } from './record'

const BLOCKS_PER_STAGE = 8 // 3 stages x 8 BasicBlocks = 48 convs, + stem conv + FC = 50 layers
const WIDTHS = [16, 32, 64]
const BATCH = 32
const T = 4

function network(connect: DualConnect, alpha: number, zeroInit: boolean): LayerSpec[] {
  const neuron = () => ifNode({ surrogate: surrogate.sigmoid(alpha) })
  const stages = WIDTHS.flatMap((width, s) =>
    Array.from({ length: BLOCKS_PER_STAGE }, (_, b) => {
      const first = b === 0 && s > 0
      // The residual neuron of the Spiking ResNet form uses the same surrogate as the branch.
      const residualNeuron = connect === 'spikingResnet' ? { surrogate: surrogate.sigmoid(alpha) } : undefined
      return dualBasicBlock(first ? WIDTHS[s - 1] : width, width, {
        stride: first ? 2 : 1,
        connect,
        neuron,
        zeroInit,
        residualNeuron,
      })
    }),
  )
  return [
    conv2d(1, WIDTHS[0], 3, { padding: 1, bias: false }),
    batchNorm2d(WIDTHS[0]),
    neuron(),
    maxPool2d(2),
    dualStream({ stages, classes: 10 }),
  ]
}

function atomicWrite(path: string, text: string): void {
  writeFileSync(`${path}.tmp`, text)
  renameSync(`${path}.tmp`, path)
}

async function main(): Promise<void> {
  const { train } = loadFashionMnist({ limitPerClass: 10 })
  const batch = train.batches(BATCH, { shuffle: true, seed: 7 })[Symbol.iterator]().next().value!
  const connects: DualConnect[] = ['and', 'iand', 'or', 'xor', 'spikingResnet']
  const regimes = [
    { name: 'vanishing', alpha: 2 },
    { name: 'exploding', alpha: 8 },
  ]
  const inits = [
    { init: 'zero-init', zeroInit: true },
    { init: 'random init', zeroInit: false },
  ]
  const rows: {
    regime: string
    alpha: number
    init: string
    connect: string
    network: string
    norms: number[]
    accNorms: number[]
  }[] = []
  for (const { name, alpha } of regimes)
    for (const { init, zeroInit } of inits) {
      for (const connect of connects) {
        // The plain network is the DSNN's own full-spike part: the same weights, AAP removed.
        const dsnn = sequential(network(connect, alpha, zeroInit), { timeSteps: T, inputShape: [1, 28, 28], seed: 1 })
        const plain = await dsnn.toFullSpike()
        for (const [label, model] of [
          ['plain', plain],
          ['DSNN', dsnn],
        ] as const) {
          model.configureTraining(sgd({ lr: 0.1 }))
          const { norms } = await model.gradientNorms(batch.x, batch.y)
          rows.push({
            regime: name,
            alpha,
            init,
            connect,
            network: label,
            norms: norms.filter((n) => n.name.endsWith('.O')).map((n) => n.norm),
            accNorms: norms.filter((n) => n.name.endsWith('.A')).map((n) => n.norm),
          })
          await model.dispose()
        }
      }
    }
  const results = join(__dirname, 'results')
  const ratio = (r: (typeof rows)[number]) => r.norms[0] / r.norms[r.norms.length - 1]
  let md = '# Gradient norms per block at initialisation (Appendix C.3, our scale)\n\n'
  md += `Command: \`npm run bench:gradients\`. Network: stem conv3x3-BN-IF-maxpool, then ${WIDTHS.length} stages x ${BLOCKS_PER_STAGE} dual-stream BasicBlocks `
  md += `(widths ${WIDTHS.join('/')}, stride-2 downsampling blocks), GAP, FC: 50 layers. IF neurons, Sigmoid surrogate, T = ${T}, `
  md += `${BATCH} Fashion-MNIST images, each branch's last BN zero-initialised (identity blocks, as the paper trains) or randomly initialised. "plain" is the DSNN's own full-spike network (\`toFullSpike()\`: the same `
  md += `weights, AAP removed, loss CE(y_s)); "DSNN" keeps the AAP (loss CE(y_s) + CE(y_a)). Norms: L2 norm of dL/dO_l at block l's spike output and, for the DSNN, of dL/dA_l at its accumulation output; `
  md += `blocks counted from the input (block 24 is the last).\n\n`
  md +=
    '| regime | init | g | network | O: block 1 | O: block 12 | O: block 24 | O: first / last | A: block 1 | A: block 24 |\n|---|---|---|---|---|---|---|---|---|---|\n'
  const e = (v: number | undefined) => (v === undefined ? '-' : v.toExponential(2))
  for (const r of rows) {
    const n = r.norms,
      a = r.accNorms
    md += `| ${r.regime} (alpha ${r.alpha}) | ${r.init} | ${r.connect} | ${r.network} | ${e(n[0])} | ${e(n[11])} | ${e(n[n.length - 1])} | ${e(ratio(r))} | ${e(a[0])} | ${e(a[a.length - 1])} |\n`
  }
  for (const { name, alpha } of regimes)
    for (const { init } of inits) {
      const points = rows
        .filter((r) => r.regime === name && r.init === init)
        .flatMap((r) => [
          ...r.norms.map((y, i) => ({ x: i + 1, y: Math.max(y, 1e-12), series: `${r.network} ${r.connect} O` })),
          ...r.accNorms.map((y, i) => ({ x: i + 1, y: Math.max(y, 1e-12), series: `${r.network} ${r.connect} A` })),
        ])
      const svg = await lineChartSvg({
        title: `Gradient norm per block, ${init}, ${name} (Sigmoid alpha ${alpha})`,
        xTitle: 'block',
        yTitle: 'gradient L2 norm (log; 0 drawn at 1e-12)',
        logY: true,
        points,
      })
      const file = `dst-gradients-${name}-${init.split(' ')[0]}.svg`
      atomicWrite(join(results, file), svg)
      md += `\n![${name}, ${init}](${file})\n`
    }
  process.stdout.write(md)
  record('dst-gradients', 'npm run bench:gradients', { rows: rows.map((r) => ({ ...r, firstOverLast: ratio(r) })) })
}

main().catch((e) => {
  console.error(e)
  process.exitCode = 1
})
