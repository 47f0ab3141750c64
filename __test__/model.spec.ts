import test from 'ava'
import type { LabelledData } from '../ts/index'
import { adam, DualstreamError, Model, sequential, sgd } from '../ts/index'
import * as build from '../ts/layers'

import native = require('../ts/native')

import { syntheticData } from './synthetic'

// A learnable synthetic task: class 0 lights the top half of an 8x8 image, class 1 the bottom.
function halves(n: number, seed = 1): LabelledData & { x: Float32Array; y: Uint32Array } {
  return syntheticData({
    n,
    sampleShape: [1, 8, 8],
    classes: 2,
    seed,
    value: (label, p, r) => (p < 32 === (label === 0) ? 0.6 : 0.1) + 0.3 * r,
  })
}

const smallNet = () => [
  build.conv2d(1, 4, 3, { padding: 1, bias: false }),
  build.batchNorm2d(4),
  build.lif(),
  build.maxPool2d(2),
  build.flatten(),
  build.linear(4 * 4 * 4, 2),
]

test('fit learns a separable task and evaluate reports accuracy and firing rates', async (t) => {
  const data = halves(256)
  const model = sequential(smallNet(), { timeSteps: 4, seed: 3 })
  const before = await model.evaluate(data)
  const fit = await model.fit(data, { epochs: 3, batchSize: 32, optimizer: sgd({ lr: 0.1, momentum: 0.9 }) })
  t.is(fit.epochs.length, 3)
  t.false(fit.stopped)
  t.true(fit.epochs[2].loss < fit.epochs[0].loss, `loss ${fit.epochs.map((e) => e.loss)}`)
  const after = await model.evaluate(data)
  t.true(after.accuracy >= 0.95, `accuracy ${after.accuracy} (before ${before.accuracy})`)
  t.is(after.count, 256)
  t.is(after.firingRates.length, 1)
  t.true(after.firingRates[0].rate > 0 && after.firingRates[0].rate < 1)
  t.is(model.parameterCount, 4 * 9 + 4 + 4 + 64 * 2 + 2)
  await model.dispose()
})

test('the same seed reproduces a run exactly; another seed does not', async (t) => {
  const data = halves(128)
  const run = async (seed: number) => {
    const model = sequential(smallNet(), { timeSteps: 4, seed })
    const losses: number[] = []
    await model.fit(data, {
      epochs: 1,
      batchSize: 16,
      optimizer: adam({ lr: 1e-2 }),
      onBatchEnd: (b) => losses.push(b.loss),
    })
    await model.dispose()
    return losses
  }
  const a = await run(5)
  t.deepEqual(a, await run(5))
  t.notDeepEqual(a, await run(6))
})

test('training runs off the main thread: timers fire while a batch trains', async (t) => {
  const model = sequential(
    [
      build.conv2d(1, 32, 3, { padding: 1 }),
      build.batchNorm2d(32),
      build.lif(),
      build.conv2d(32, 32, 3, { padding: 1 }),
      build.batchNorm2d(32),
      build.lif(),
      build.flatten(),
      build.linear(32 * 32 * 32, 2),
    ],
    {
      timeSteps: 8,
      inputShape: [1, 32, 32],
    },
  )
  model.configureTraining(sgd({ lr: 0.01 }))
  const n = 64
  const x = new Float32Array(n * 32 * 32).fill(0.5)
  const y = new Uint32Array(n)
  let ticks = 0
  const timer = setInterval(() => ticks++, 1)
  const started = performance.now()
  await model.trainBatch(x, y)
  const ms = performance.now() - started
  clearInterval(timer)
  // A blocked event loop would run the interval at most once after the call returns.
  t.true(ticks >= 3, `only ${ticks} timer ticks during a ${ms.toFixed(0)} ms step`)
})

test('bad input: shapes, labels, NaN, spec errors and disposed models name what was wrong', async (t) => {
  const model = sequential(smallNet(), { timeSteps: 4, inputShape: [1, 8, 8] })
  model.configureTraining(sgd({ lr: 0.1 }))
  const x = new Float32Array(2 * 64)
  let e = await t.throwsAsync(model.trainBatch(new Float32Array(2 * 60), new Uint32Array(2)), {
    instanceOf: DualstreamError,
  })
  t.is(e.code, 'ERR_SHAPE')
  t.regex(e.message, /input/)
  e = await t.throwsAsync(model.trainBatch(x, new Uint32Array([0, 7])), { instanceOf: DualstreamError })
  t.is(e.code, 'ERR_VALUE')
  t.regex(e.message, /labels\[1\]/)
  t.regex(e.message, /\[0, 2\)/)
  const bad = x.slice()
  bad[5] = Number.NaN
  e = await t.throwsAsync(model.trainBatch(bad, new Uint32Array(2)), { instanceOf: DualstreamError })
  t.is(e.code, 'ERR_NON_FINITE')
  t.regex(e.message, /input/)
  e = await t.throwsAsync(model.trainBatch([1, 2] as unknown as Float32Array, new Uint32Array(2)), {
    instanceOf: DualstreamError,
  })
  t.is(e.code, 'ERR_ARG')

  const wrong = () =>
    sequential([build.conv2d(1, 4, 3), build.lif(), build.flatten(), build.linear(10, 2)], {
      timeSteps: 4,
      inputShape: [1, 8, 8],
    })
  const specError = t.throws(wrong, { instanceOf: DualstreamError })
  t.regex(specError.message, /layers\.3/)
  t.regex(specError.message, /144/)
  t.throws(() => build.conv2d(3, 4, 3, { groups: 2 }), { message: /groups/ })
  t.throws(() => build.lif({ tau: Number.NaN }), { message: /tau/ })

  await model.dispose()
  e = await t.throwsAsync(model.trainBatch(x, new Uint32Array(2)), { instanceOf: DualstreamError })
  t.is(e.code, 'ERR_DISPOSED')
})

test('a Rust panic becomes a JS error and Node keeps running', (t) => {
  const e = t.throws(() => native.debugPanic('boom')) as Error & { code?: string }
  t.is(e.code, 'ERR_INTERNAL')
  t.regex(e.message, /^debugPanic: internal error in the engine: boom/)
  t.is(native.engineVersion(), '0.1.0')
})

test('IF, PLIF and SEW blocks train end to end', async (t) => {
  const data = halves(64)
  const model = new Model(
    [
      build.conv2d(1, 4, 3, { padding: 1, bias: false }),
      build.batchNorm2d(4),
      build.ifNode(),
      build.sewBasicBlock(4, { connect: 'iand', neuron: () => build.plif() }),
      build.flatten(),
      build.linear(4 * 8 * 8, 2),
    ],
    { timeSteps: 4 },
  )
  const fit = await model.fit(data, { epochs: 2, batchSize: 16, optimizer: sgd({ lr: 0.05, momentum: 0.9 }) })
  t.true(Number.isFinite(fit.epochs[1].loss))
  const names = model.firingRates().map((r) => r.name)
  t.deepEqual(names, ['layers.2 (if)', 'layers.3.branch.2 (plif)', 'layers.3.branch.5 (plif)', 'layers.3.out'])
})
