// reestimateBatchNorm: the BN running statistics become PyTorch's cumulative average
// (momentum=None) of the training batches' statistics; the weights stay as they were.
import test from 'ava'
import {
  batchNorm2d,
  conv2d,
  flatten,
  lif,
  linear,
  Model,
  reestimateBatchNorm,
  sequential,
  TensorDataset,
} from '../ts/index'
import { syntheticImages } from './synthetic'

const shape: [number, number, number] = [2, 3, 3]
function data(n: number): TensorDataset {
  const { x: images, y: labels } = syntheticImages({
    n,
    sampleShape: shape,
    classes: 2,
    seed: 5,
    value: (label, p, r) => (p < 9 ? 0.3 : -1.2) + label + 2 * r,
  })
  return new TensorDataset({ name: 'planes', images, labels, sampleShape: shape, numClasses: 2 })
}

test('reestimateBatchNorm gives the mean over batches of each batch mean and unbiased variance', async (t) => {
  const train = data(40)
  const T = 3
  // The BN sees the input itself through an identity 1x1 conv (direct encoding: the same image
  // at every time step), so each batch's statistics can be computed here from the images alone.
  const fresh = sequential([conv2d(2, 2, 1), batchNorm2d(2), lif(), flatten(), linear(18, 2)], {
    timeSteps: T,
    inputShape: shape,
    seed: 1,
  })
  const identity: Record<string, Float32Array> = {
    'layers.0.weight': Float32Array.of(1, 0, 0, 1),
    'layers.0.bias': Float32Array.of(0, 0),
  }
  const tensors = fresh.stateTensors().map((s) => ({ ...s, data: identity[s.name] ?? s.data }))
  const model = Model.fromCheckpoint({
    path: 'identity',
    spec: fresh.spec,
    seed: 1,
    tensors,
    trainer: [],
    metadata: {},
  })
  await fresh.dispose()
  const [batches, batchSize, seed] = [3, 8, 4]
  const calibrated = await reestimateBatchNorm(model, train, { batches, batchSize, seed })
  // PyTorch with momentum=None: running = (1 - 1/k) running + (1/k) batch statistic after the
  // k-th batch, i.e. the plain mean; the variance is unbiased over the T * N * H * W values.
  const mean = [0, 0]
  const variance = [0, 0]
  let k = 0
  for (const b of train.batches(batchSize, { shuffle: true, seed, epoch: 0, dropLast: true })) {
    if (k === batches) break
    for (let c = 0; c < 2; c++) {
      const v: number[] = []
      for (let i = 0; i < b.size; i++) for (let p = 0; p < 9; p++) v.push(b.x[i * 18 + c * 9 + p])
      const m = v.reduce((a, x) => a + x, 0) / v.length
      const n = v.length * T
      const ss = T * v.reduce((a, x) => a + (x - m) ** 2, 0)
      mean[c] += m
      variance[c] += ss / (n - 1)
    }
    k++
  }
  const stats = Object.fromEntries(calibrated.stateTensors().map((s) => [s.name, s.data]))
  const name = (s: string) => Object.keys(stats).find((n) => n.endsWith(s))!
  for (let c = 0; c < 2; c++) {
    t.true(Math.abs(stats[name('running_mean')][c] - mean[c] / batches) < 1e-5, `mean of channel ${c}`)
    t.true(Math.abs(stats[name('running_var')][c] - variance[c] / batches) < 1e-4, `variance of channel ${c}`)
  }
  // Fresh statistics are 0 and 1: the estimate replaced them, and left every weight alone.
  t.true(Math.abs(stats[name('running_mean')][1]) > 0.1)
  const before = model.stateTensors()
  for (const s of calibrated.stateTensors()) {
    if (s.name.endsWith('running_mean') || s.name.endsWith('running_var')) continue
    t.deepEqual(s.data, before.find((b) => b.name === s.name)!.data, s.name)
  }
  await Promise.all([model.dispose(), calibrated.dispose()])
})

test('reestimateBatchNorm refuses a batch larger than the data', async (t) => {
  const model = sequential([conv2d(2, 2, 1), batchNorm2d(2), lif(), flatten(), linear(18, 2)], {
    timeSteps: 1,
    inputShape: shape,
  })
  await t.throwsAsync(reestimateBatchNorm(model, data(4), { batchSize: 8 }), { message: /at most the 4 samples/ })
  await model.dispose()
})
