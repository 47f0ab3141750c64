import test from 'ava'
import type { EnergyReport, ZooNet } from '../ts/index'
import {
  conv2d,
  convDsnn,
  DualstreamError,
  dsnn18,
  dsnn34,
  dsnn50,
  dsnn101,
  flatten,
  formatEnergyTable,
  ifNode,
  lif,
  linear,
  sequential,
  sewResnet18,
  sgd,
  TensorDataset,
} from '../ts/index'

function dataset(sampleShape: number[], images: Float32Array, classes = 1000): TensorDataset {
  const size = sampleShape.reduce((a, b) => a * b, 1)
  return new TensorDataset({
    name: 'energy',
    images,
    labels: new Uint32Array(images.length / size),
    sampleShape,
    numClasses: classes,
  })
}

function randomImages(n: number, size: number, seed: number): Float32Array {
  let s = seed
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
  return Float32Array.from({ length: n * size }, () => 4 * rand() - 2)
}

const imagenet = dataset([3, 224, 224], randomImages(1, 3 * 224 * 224, 7))

async function imagenetCounts(net: ZooNet): Promise<{ fsnn: EnergyReport; dsnn: EnergyReport }> {
  const model = sequential(net.layers, { timeSteps: net.timeSteps, inputShape: net.inputShape, seed: 1 })
  const fsnn = await model.energy(imagenet, { mode: 'fsnn', batchSize: 1 })
  const dsnn = await model.energy(imagenet, { mode: 'dsnn', batchSize: 1 })
  await model.dispose()
  return { fsnn, dsnn }
}

// ImageNet shapes (3x224x224, T = 4), one image, random weights without zero-init of the last
// BNs, so the branch neurons fire and the accumulation stream holds values above 1.
test('ImageNet DSNN/FSNN 18/34/50/101: the MAC counts of Table 2', async (t) => {
  const stem = 112 * 112 * 64 * 3 * 49
  t.is(stem, 118_013_952)
  const mac: Record<number, number> = {}
  for (const [depth, build] of [
    [18, dsnn18],
    [34, dsnn34],
    [50, dsnn50],
    [101, dsnn101],
  ] as const) {
    const { fsnn, dsnn } = await imagenetCounts(build({ zeroInit: false }))
    t.is(fsnn.totals.mac, stem, `FSNN-${depth}: only the stem conv multiplies`)
    t.is(fsnn.layers[0].name, 'layers.0')
    t.true(fsnn.layers[0].staticInput, 'the image is fed at every step but computed once')
    t.true(
      fsnn.layers.slice(1).every((l) => l.spikeInput && l.mac === 0),
      `FSNN-${depth}: every other layer reads spikes`,
    )
    t.false(
      fsnn.layers.some((l) => l.name.includes('projection')),
      'no AAP in the FSNN',
    )
    t.true(fsnn.totals.ac > 1e8, `FSNN-${depth} AC ${fsnn.totals.ac}`)
    t.is(dsnn.totals.mac > stem, true)
    t.true(dsnn.neurons.every((r) => r.ratePerStep.length === 4))
    mac[depth] = dsnn.totals.mac
    if (depth === 50) {
      // The first Bottleneck stage changes 64 -> 256 channels at stride 1: its AAP projection
      // (a plain 1x1 conv) reads A_0, the stem's spikes, so it accumulates.
      const first = dsnn.layers.find((l) => l.name.endsWith('stages.0.projection.0'))!
      t.true(first.spikeInput && first.mac === 0 && first.ac > 0, JSON.stringify(first))
    }
  }
  t.is(mac[18], mac[34])
  t.is(mac[50], mac[101])
  t.true(Math.abs(mac[18] / 0.2e9 - 1) < 0.03, `DSNN-18 MAC ${mac[18]}`)
  t.true(Math.abs(mac[50] / 1.37e9 - 1) < 0.03, `DSNN-50 MAC ${mac[50]}`)
})

test('SEW-ResNet-18 (ADD) multiplies wherever an ADD output reaches a conv', async (t) => {
  const net = sewResnet18({ zeroInit: false })
  const model = sequential(net.layers, { timeSteps: net.timeSteps, inputShape: net.inputShape, seed: 1 })
  const r = await model.energy(imagenet, { batchSize: 1 })
  t.true(r.totals.mac > 1e9, `SEW-18 MAC ${r.totals.mac}`)
  t.true(r.layers.some((l) => !l.spikeInput && !l.staticInput && l.name.includes('branch.0')))
  t.deepEqual(
    r.blocks.map((b) => b.name),
    [0, 1, 2, 3, 4, 5, 6, 7].map((i) => `layers.${4 + i}.out`),
    'one output monitor per block',
  )
})

test('spike inputs of a known rate cost dense ops x rate accumulations, exactly', async (t) => {
  // conv 4 -> 6, 3x3, stride 2, pad 1, groups 2 on 9x9: 5x5 outputs, 3*3*2*6*25 = 2700 ops per step.
  const dense = 3 * 3 * (4 / 2) * 6 * 5 * 5
  const size = 4 * 9 * 9
  const images = new Float32Array(3 * size)
  const ones = [17, 100, 250]
  ones.forEach((k, n) => {
    for (let i = 0; i < k; i++) images[n * size + ((i * 7) % size)] = 1
  })
  const model = sequential(
    [conv2d(4, 6, 3, { stride: 2, padding: 1, groups: 2, bias: false }), ifNode(), flatten(), linear(150, 2)],
    { timeSteps: 5, seed: 3 },
  )
  const r = await model.energy(dataset([4, 9, 9], images, 2), { batchSize: 2 })
  t.is(r.samples, 3)
  const conv = r.layers[0]
  const rate = (17 + 100 + 250) / (3 * size)
  t.true(conv.spikeInput && !conv.staticInput)
  t.true(Math.abs(conv.inputRate! - rate) < 1e-15)
  t.true(Math.abs(conv.ac - dense * 5 * rate) < 1e-9 * conv.ac, `${conv.ac} vs ${dense * 5 * rate}`)
  t.is(conv.denseOps, dense * 5)
  t.is(conv.acWorst, dense * 5)
  t.is(conv.mac, 0)
  // The linear layer reads the IF spikes: AC = (150*2 weights) x their rate + 2 bias adds per step.
  const fc = r.layers[1]
  const ifRate = r.neurons[0].rate
  t.true(Math.abs(fc.ac - (300 * ifRate + 2) * 5) < 1e-9 * fc.ac)
  t.is(r.neurons[0].units, 150)
  t.is(r.totals.neuronUpdates, 150 * 5)
  t.true(Math.abs(r.totals.dynamicMj - 0.9 * r.totals.ac * 1e-9) < 1e-18)
  const int8 = await model.energy(dataset([4, 9, 9], images, 2), { preset: 'int8' })
  t.true(Math.abs(int8.totals.dynamicMj - 0.03 * int8.totals.ac * 1e-9) < 1e-18)
  t.is(int8.energies.name, 'int8')
  const custom = await model.energy(dataset([4, 9, 9], images, 2), { energies: { acPj: 2, macPj: 10 } })
  t.deepEqual(custom.energies, { name: 'custom', acPj: 2, macPj: 10 })
})

test('bad energy options name the option and what was expected', async (t) => {
  const model = sequential([conv2d(1, 2, 3), lif(), flatten(), linear(2 * 3 * 3, 2)], {
    timeSteps: 2,
    inputShape: [1, 5, 5],
  })
  const data = dataset([1, 5, 5], new Float32Array(25), 2)
  const e1 = await t.throwsAsync(model.energy(data, { preset: 'fp64' as 'fp32' }), { instanceOf: DualstreamError })
  t.regex(e1!.message, /energy preset.*fp32, fp16, int8/)
  const e2 = await t.throwsAsync(model.energy(data, { energies: { acPj: -1, macPj: 2 } }), {
    instanceOf: DualstreamError,
  })
  t.regex(e2!.message, /energies/)
  const e3 = await t.throwsAsync(model.energy(data, { mode: 'dsnn' }), { instanceOf: DualstreamError })
  t.regex(e3!.message, /fsnn/)
})

test('folding BN keeps the eval outputs of a DSNN and its energy report prints as a table', async (t) => {
  const model = sequential(convDsnn({ size: 12, classes: 3, width: 8 }), {
    timeSteps: 3,
    inputShape: [1, 12, 12],
    seed: 5,
  })
  const images = randomImages(6, 144, 3).map((v) => Math.abs(v))
  const x = images.slice(0, 4 * 144)
  // Train-mode steps move the BN running statistics away from their defaults.
  const data = dataset([1, 12, 12], images, 3)
  await model.fit(data, { epochs: 2, batchSize: 3, optimizer: sgd({ lr: 0.05 }) })
  const folded = await model.foldBatchNorm()
  t.false(JSON.stringify(folded.spec).includes('batchNorm2d'))
  for (const mode of ['fsnn', 'dsnn'] as const) {
    const a = await model.predict(x, 4, mode)
    const b = await folded.predict(x, 4, mode)
    t.true(
      a.every((v, i) => Math.abs(v - b[i]) <= 1e-5),
      mode,
    )
  }
  const report = await model.energy(data, { mode: 'dsnn', batchSize: 4 })
  t.deepEqual(JSON.parse(JSON.stringify(report)), report, 'the report is plain JSON')
  const text = formatEnergyTable(report)
  t.regex(text, /Dynamic Consumption [0-9.e+-]+ mJ/)
  t.regex(text, /layers\.0\s+conv2d\s+static \(once\)/)
  for (const l of report.layers) t.true(text.includes(l.name))
  t.true(report.blocks.length > 0 && text.includes(report.blocks[0].name))
})
