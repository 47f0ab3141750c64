import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import type { LabelledData } from '../ts/index'
import {
  adam,
  batchNorm2d,
  conv2d,
  DualstreamError,
  linear,
  losses,
  Model,
  readCheckpoint,
  sequential,
  spikformer,
  spikformerNeuron,
  tokenMean,
  tokens,
} from '../ts/index'

// Three classes: light in the top, middle or bottom third of a 16x16 image.
function thirds(n: number, seed = 1): LabelledData & { x: Float32Array; y: Uint32Array } {
  let s = seed
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
  const px = 256
  const x = new Float32Array(n * px)
  const y = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    y[i] = i % 3
    for (let p = 0; p < px; p++) {
      const band = Math.min(2, Math.floor(Math.floor(p / 16) / 5.34))
      x[i * px + p] = (band === y[i] ? 0.8 : 0.1) + 0.4 * rand()
    }
  }
  return {
    x,
    y,
    length: n,
    sampleShape: [1, 16, 16],
    numClasses: 3,
    *batches(batchSize: number) {
      for (let i = 0; i + batchSize <= n; i += batchSize) {
        yield { x: x.slice(i * px, (i + batchSize) * px), y: y.slice(i, i + batchSize), size: batchSize }
      }
    },
  }
}

const tiny = { inputShape: [1, 16, 16], classes: 3, timeSteps: 2, depth: 1, dim: 16, heads: 2, mlpRatio: 2 }

test('the zoo builds the paper Spikformer-4-384 and refuses bad options by name', (t) => {
  const net = spikformer()
  t.is(net.name, 'spikformer-4-384-add')
  t.deepEqual(net.inputShape, [3, 32, 32])
  t.is(net.timeSteps, 4)
  t.is(net.layers.filter((l) => l.type === 'sewBlock').length, 1 + 2 * 4, 'relative position join, then 4 x (SSA, MLP)')
  t.like(net.layers.at(-1), { type: 'linear', inFeatures: 384, outFeatures: 10 })
  const m = sequential(net.layers, net)
  t.true(m.parameterCount > 9e6 && m.parameterCount < 1e7, `${m.parameterCount} parameters`)
  const dst = spikformer({ dst: true })
  t.like(dst.layers.at(-1), { type: 'dualStream', headPool: 'tokens', head: { inFeatures: 384 } })
  t.throws(() => spikformer({ dst: true, connect: 'add' }), { instanceOf: DualstreamError, message: /connect/ })
  t.throws(() => spikformer({ dim: 36 }), { instanceOf: DualstreamError, message: /spikformer dim/ })
  t.throws(() => spikformer({ heads: 5 }), { instanceOf: DualstreamError, message: /spikformer heads/ })
})

test('a tiny IAND + DST Spikformer trains, its full-spike model matches fsnn mode and passes the audit', async (t) => {
  const data = thirds(48)
  const net = spikformer({ ...tiny, connect: 'iand', dst: true })
  const model = sequential(net.layers, { ...net, seed: 5 })
  t.is(model.heads, 2)
  // Small batches: enough updates for the BN running statistics that inference reads.
  const fit = await model.fit(data, {
    epochs: 4,
    batchSize: 4,
    optimizer: adam({ lr: 0.01 }),
    loss: losses.crossEntropy({ headWeights: [1, 1] }),
  })
  const first = fit.epochs[0].loss
  const last = fit.epochs.at(-1)!.loss
  t.true(last < first, `loss ${first} -> ${last}`)
  const x = data.x.slice(0, 6 * 256)
  const full = await model.toFullSpike()
  t.is(full.heads, 1)
  t.true(full.parameterCount === model.parameterCount, 'no projections: the AAP adds no parameter')
  t.deepEqual(Array.from(await full.predict(x, 6)), Array.from(await model.predict(x, 6, 'fsnn')))
  t.notDeepEqual(Array.from(await model.predict(x, 6, 'dsnn')), Array.from(await model.predict(x, 6, 'fsnn')))
  const audit = await full.audit(x, 6)
  t.true(audit.passed, JSON.stringify(audit.offending))
  t.true((await model.audit(x, 6)).passed)
  // Save and load: the same logits.
  const file = join(mkdtempSync(join(tmpdir(), 'dualstream-spikformer-')), 'm.safetensors')
  await model.save(file)
  const back = Model.fromCheckpoint(readCheckpoint(file))
  t.deepEqual(Array.from(await back.predict(x, 6, 'dsnn')), Array.from(await model.predict(x, 6, 'dsnn')))
  // The energy report counts the attention products as accumulations (spike operands).
  const report = await full.energy(data, { mode: 'fsnn', maxSamples: 12, batchSize: 12 })
  const attention = report.layers.filter((l) => l.kind === 'attention')
  t.is(attention.length, 2)
  t.true(
    attention.every((l) => l.mac === 0 && l.ac > 0 && l.spikeInput),
    JSON.stringify(attention),
  )
  t.is(report.totals.mac > 0, true, 'the stem conv reads the image: MAC')
  for (const m of [model, full, back]) await m.dispose()
})

test('the ADD Spikformer fails the full-spike audit inside its blocks; the IAND one passes, its head counted as ACs', async (t) => {
  const data = thirds(12)
  const x = data.x
  for (const connect of ['add', 'iand'] as const) {
    const net = spikformer({ ...tiny, connect })
    const model = sequential(net.layers, { ...net, seed: 1 })
    model.configureTraining(adam({ lr: 0.01 }), undefined, losses.crossEntropy())
    // Enough steps for the BN running statistics that the audit's inference reads.
    for (let i = 0; i < 30; i++) {
      const r = await model.trainBatch(x, data.y)
      t.true(Number.isFinite(r.loss) && r.loss > 0)
    }
    const audit = await model.audit(x, 12)
    const n = net.layers.length
    // The FC is judged on the spikes the token mean averages: FC(mean O) = sum_l (W / L) O_l.
    const head = `layers.${n - 1} (linear, on the input of the mean layers.${n - 2} (tokenMean))`
    const report = await model.energy(data, { batchSize: 12 })
    const fc = report.layers.find((l) => l.name === `layers.${n - 1}`)
    if (connect === 'add') {
      // A residual sum of two spikes (2) reaches a block's linear, and the mean of sums the FC.
      t.true(
        audit.offending.some((o) => o.name !== head && o.example === 2),
        JSON.stringify(audit.offending),
      )
      t.is(audit.offending.at(-1)?.name, head)
      t.like(fc, { spikeInput: false, ac: 0 })
      t.is(fc?.mac, tiny.timeSteps * (tiny.dim * tiny.classes + tiny.classes))
    } else {
      t.true(audit.passed, JSON.stringify(audit.offending))
      t.like(fc, { spikeInput: true, mac: 0 })
      // Per spike one column of W (classes ACs), plus the biases per step.
      const rate = fc?.inputRate ?? 0
      const spikes = rate * tiny.timeSteps * (tiny.dim * 16)
      t.true(Math.abs((fc?.ac ?? 0) - (spikes * tiny.classes + tiny.timeSteps * tiny.classes)) < 1e-6 * (fc?.ac ?? 1))
    }
    await model.dispose()
  }
})

test('NIR export of a Spikformer is refused naming the first layer NIR cannot express', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dualstream-spikformer-nir-'))
  for (const connect of ['add', 'iand'] as const) {
    const net = spikformer({ ...tiny, connect })
    const model = sequential(net.layers, { ...net, seed: 1 })
    // SPS max-pools BN outputs; NIR pools spikes only (sum pooling, then a threshold).
    const pool = net.layers.findIndex((l) => l.type === 'maxPool2d')
    const err = await t.throwsAsync(model.toNir(join(dir, `${connect}.nir`)), { instanceOf: DualstreamError })
    t.is(err?.code, 'ERR_SPEC')
    t.true(err?.message.startsWith(`layers.${pool} (maxPool2d): max pooling of non-spike values`), err?.message)
    await model.dispose()
  }
  // Without pooling, the first token layer is the one refused.
  const layers = [
    conv2d(1, 8, 3, { padding: 1, bias: false }),
    batchNorm2d(8),
    spikformerNeuron(),
    tokens(),
    tokenMean(),
    linear(8, 3),
  ]
  const model = sequential(layers, { inputShape: [1, 16, 16], timeSteps: 2, seed: 1 })
  const err = await t.throwsAsync(model.toNir(join(dir, 'tokens.nir')), { instanceOf: DualstreamError })
  t.is(err?.code, 'ERR_SPEC')
  t.regex(err?.message ?? '', /^layers\.3 \(tokens\): a spiking-transformer layer has no NIR equivalent; .*checkpoint/)
  await model.dispose()
})
