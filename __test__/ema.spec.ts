// fit with a weight average (ema): what it evaluates, saves and returns is the average.
import test from 'ava'
import type { NamedTensor } from '../ts/checkpoint'
import type { EpochEnd } from '../ts/index'
import { adamW, batchNorm2d, conv2d, dropout, flatten, lif, linear, sequential, TensorDataset } from '../ts/index'
import { syntheticImages } from './synthetic'

function stripes(n: number, seed: number): TensorDataset {
  const { x: images, y: labels } = syntheticImages({
    n,
    sampleShape: [1, 6, 6],
    classes: 3,
    seed,
    value: (label, p, r) => ((p % 6) % 3 === label ? 0.8 : 0.1) + 0.5 * r,
  })
  return new TensorDataset({ name: 'stripes', images, labels, sampleShape: [1, 6, 6], numClasses: 3 })
}

const net = () => [conv2d(1, 3, 3, { padding: 1 }), batchNorm2d(3), lif(), flatten(), dropout(0.2), linear(108, 3)]
const options = { epochs: 2, batchSize: 12, optimizer: adamW({ lr: 1e-2 }), schedule: 'cosine' as const, seed: 3 }
const strip = (e: EpochEnd) => ({ ...e, seconds: 0, samplesPerSecond: 0, weights: undefined })

test('fit with ema decay 0 trains, validates and returns exactly what fit without ema does', async (t) => {
  const data = stripes(72, 1)
  const plain = sequential(net(), { timeSteps: 2, seed: 8 })
  const zero = sequential(net(), { timeSteps: 2, seed: 8 })
  const a = await plain.fit(data, { ...options, validation: data })
  const b = await zero.fit(data, { ...options, validation: data, ema: { decay: 0 } })
  t.true(b.epochs.every((e) => e.weights === 'average'))
  t.true(a.epochs.every((e) => e.weights === undefined))
  t.deepEqual(b.epochs.map(strip), a.epochs.map(strip), 'losses, accuracies and validation, bit for bit')
  t.deepEqual(zero.stateTensors(), plain.stateTensors())
  await Promise.all([plain.dispose(), zero.dispose()])
})

test('fit with ema returns and validates with the average of the weights each step trained', async (t) => {
  const data = stripes(72, 2)
  const decay = 0.7
  // The trained weights after every step, from the same run without an average.
  const trained = sequential(net(), { timeSteps: 2, seed: 8 })
  const steps: NamedTensor[][] = []
  await trained.fit(data, { ...options, onBatchEnd: () => void steps.push(trained.stateTensors()) })
  // The BN running statistics are averaged only when asked for (buffers: true); by default the
  // model keeps the trained ones.
  for (const [warmup, buffers] of [
    [false, true],
    [true, true],
    [false, undefined],
  ] as const) {
    const averaged = sequential(net(), { timeSteps: 2, seed: 8 })
    const ema = buffers === undefined ? { decay, warmup } : { decay, warmup, buffers }
    const result = await averaged.fit(data, { ...options, validation: data, ema })
    // average = d * average + (1 - d) * weights, the first step a copy, d the decay or with the
    // warm-up min(decay, (1 + n) / (10 + n)) after n updates; f64 here, so only close to f32.
    const expected = steps[0].map((x) => Float64Array.from(x.data))
    steps.slice(1).forEach((state, i) => {
      const n = i + 1
      const d = warmup ? Math.min(decay, (1 + n) / (10 + n)) : decay
      state.forEach((x, j) => {
        for (let k = 0; k < x.data.length; k++) expected[j][k] = d * expected[j][k] + (1 - d) * x.data[k]
      })
    })
    const got = averaged.stateTensors()
    const last = steps[steps.length - 1]
    t.deepEqual(
      got.map((x) => x.name),
      last.map((x) => x.name),
    )
    got.forEach((x, i) => {
      if (x.name.endsWith('rng_state')) {
        t.deepEqual(x.data, last[i].data, 'the dropout stream is the trained one, not averaged')
        return
      }
      if (buffers === undefined && x.name.includes('running_')) {
        t.deepEqual(x.data, last[i].data, `${x.name}: the trained statistics by default`)
        return
      }
      const worst = Math.max(...Array.from(x.data, (v, k) => Math.abs(v - expected[i][k])))
      t.true(worst < 1e-5, `${x.name}: off by ${worst}`)
      t.true(
        x.data.some((v, k) => Math.abs(v - last[i].data[k]) > 1e-4),
        `${x.name} differs from the trained weights`,
      )
    })
    // The last epoch's validation is the returned (averaged) model's evaluation.
    const final = result.epochs[result.epochs.length - 1].validation!
    const again = await averaged.evaluate(data, { batchSize: 12 })
    t.is(again.loss, final.loss)
    t.is(again.accuracy, final.accuracy)
    // Bad decays are refused, naming the option.
    for (const bad of [1, -0.5, Number.NaN, '0.9']) {
      await t.throwsAsync(averaged.fit(data, { ...options, ema: { decay: bad as number } }), {
        code: 'ERR_ARG',
        message: /fit ema\.decay: expected a number in \[0, 1\)/,
      } as never)
    }
    await t.throwsAsync(averaged.fit(data, { ...options, ema: { decay: 0.9, warmup: 10 } as never }), {
      message: /fit ema\.warmup: expected true or false/,
    })
    await t.throwsAsync(averaged.fit(data, { ...options, ema: { decay: 0.9, start: 10 } as never }), {
      message: /fit ema\.start/,
    })
    await averaged.dispose()
  }
  await trained.dispose()
})
