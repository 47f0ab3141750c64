import test from 'ava'
import { resolveConfig } from '../ts/cli/train'
import { adam, conv2d, flatten, linear, losses, schedules, sequential } from '../ts/index'

/** Batch-mean cross-entropy of `logits` [N, K] against `1 - eps` on the label plus `eps / K`. */
function smoothedCrossEntropy(logits: Float32Array, labels: Uint32Array, k: number, eps: number): number {
  let total = 0
  for (let i = 0; i < labels.length; i++) {
    const z = Array.from(logits.subarray(i * k, (i + 1) * k))
    const m = Math.max(...z)
    const lse = m + Math.log(z.reduce((s, v) => s + Math.exp(v - m), 0))
    total += lse - (1 - eps) * z[labels[i]] - (eps / k) * z.reduce((s, v) => s + v, 0)
  }
  return total / labels.length
}

test('--label-smoothing trains against smoothed targets: the loss matches the formula on the logits', async (t) => {
  const n = 4
  const k = 3
  const x = Float32Array.from({ length: n * 64 }, (_, i) => ((i * 37) % 23) / 23)
  const y = Uint32Array.from([0, 2, 1, 2])
  const build = () =>
    sequential([conv2d(1, 2, 3), flatten(), linear(72, k)], { timeSteps: 3, inputShape: [1, 8, 8], seed: 5 })
  for (const eps of [0, 0.2]) {
    const model = build()
    // No BN nor dropout: the evaluation forward is the training forward, and T steps of the
    // same input give the same logits, so their time mean is the prediction.
    const logits = await model.predict(x, n)
    model.configureTraining(adam({ lr: 1e-3 }), schedules.constant(), losses.crossEntropy({ labelSmoothing: eps }))
    const { loss } = await model.trainBatch(x, y)
    const want = smoothedCrossEntropy(logits, y, k, eps)
    t.true(Math.abs(loss - want) < 1e-5, `eps ${eps}: loss ${loss}, formula ${want}`)
    await model.dispose()
  }
  // eps 0 is the plain loss bit for bit (the spec carries no labelSmoothing at all).
  t.deepEqual(losses.crossEntropy({ labelSmoothing: 0 }), losses.crossEntropy())
  const plain = build()
  plain.configureTraining(adam({ lr: 1e-3 }), schedules.constant(), losses.crossEntropy())
  const zero = build()
  zero.configureTraining(adam({ lr: 1e-3 }), schedules.constant(), losses.crossEntropy({ labelSmoothing: 0 }))
  t.is((await plain.trainBatch(x, y)).loss, (await zero.trainBatch(x, y)).loss)
  await Promise.all([plain.dispose(), zero.dispose()])
  for (const bad of [1, -0.1, Number.NaN]) {
    t.throws(() => losses.crossEntropy({ labelSmoothing: bad }), { message: /labelSmoothing/ })
  }
})

test('--label-smoothing: 0 unless given or a dataset recipe sets it, a number in [0, 1)', (t) => {
  t.is(resolveConfig({ model: 'dsnn' })['label-smoothing'], 0)
  t.is(resolveConfig({ 'label-smoothing': '0.1' })['label-smoothing'], 0.1)
  t.is(resolveConfig({}, { path: 'c.json', values: { 'label-smoothing': 0.05 } })['label-smoothing'], 0.05)
  for (const bad of ['1', '-0.1', 'x', '']) {
    t.throws(() => resolveConfig({ 'label-smoothing': bad }), { message: /--label-smoothing: expected a number/ })
  }
})
