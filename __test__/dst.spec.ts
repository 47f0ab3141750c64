import test from 'ava'
import type { LabelledData } from '../ts/index'
import {
  adam,
  batchNorm2d,
  conv2d,
  DualstreamError,
  dualBasicBlock,
  dualStream,
  dualStreamBlock,
  flatten,
  ifNode,
  linear,
  losses,
  maxPool2d,
  sequential,
  sewBlock,
} from '../ts/index'
import { syntheticData } from './synthetic'

// Three classes: light in the top, middle or bottom third of an 9x9 image.
function thirds(n: number, seed = 1): LabelledData & { x: Float32Array; y: Uint32Array } {
  return syntheticData({
    n,
    sampleShape: [1, 9, 9],
    classes: 3,
    seed,
    value: (label, p, r) => (Math.floor(p / 27) === label ? 0.7 : 0.1) + 0.4 * r,
  })
}

// Stem conv-BN-IF reading the image, then the trunk: a block, max pooling of both streams,
// a downsampling block (stride 2, 4 -> 8 channels, with the AAP projection), shared-FC heads.
const dsnn = () => [
  conv2d(1, 4, 3, { padding: 1, bias: false }),
  batchNorm2d(4),
  ifNode(),
  dualStream({ stages: [dualBasicBlock(4, 4), maxPool2d(2), dualBasicBlock(4, 8, { stride: 2 })], classes: 3 }),
]

test('a small DSNN trains end to end, evaluates in both modes, and its full-spike model matches fsnn mode', async (t) => {
  const data = thirds(96)
  const model = sequential(dsnn(), { timeSteps: 3, seed: 2, inputShape: [1, 9, 9] })
  t.is(model.heads, 2)
  const heads: { loss: number; accuracy: number }[][] = []
  const fit = await model.fit(data, {
    epochs: 6,
    batchSize: 16,
    optimizer: adam({ lr: 0.01 }),
    loss: losses.crossEntropy({ headWeights: [1, 1] }),
    onBatchEnd: (b) => heads.push(b.heads!),
  })
  const first = fit.epochs[0].loss
  const last = fit.epochs[fit.epochs.length - 1].loss
  t.true(last < first, `loss ${first} -> ${last}`)
  t.is(heads[0].length, 2)
  t.true(heads.at(-1)![0].loss < heads[0][0].loss && heads.at(-1)![1].loss < heads[0][1].loss)

  const fsnnEval = await model.evaluate(data, { mode: 'fsnn', batchSize: 32 })
  const dsnnEval = await model.evaluate(data, { mode: 'dsnn', batchSize: 32 })
  t.is(fsnnEval.mode, 'fsnn')
  t.is(dsnnEval.mode, 'dsnn')
  t.true(fsnnEval.accuracy > 0.5, `fsnn accuracy ${fsnnEval.accuracy}`)
  t.true(dsnnEval.accuracy > 0.5, `dsnn accuracy ${dsnnEval.accuracy}`)
  // Each block's spike output O_l reports its firing rate (pooling stages have none).
  const blockOut = fsnnEval.firingRates.filter((r) => r.name.endsWith('.out'))
  t.deepEqual(
    blockOut.map((r) => r.name),
    ['layers.3.stages.0.out', 'layers.3.stages.2.out'],
  )
  t.true(
    blockOut.every((r) => r.rate > 0 && r.rate < 1),
    JSON.stringify(blockOut),
  )

  const full = await model.toFullSpike()
  t.is(full.heads, 1)
  const trunk = full.spec.layers.at(-1)!
  t.is(trunk.type, 'dualStream')
  if (trunk.type === 'dualStream') {
    t.false(trunk.aap)
    t.true(trunk.stages.every((s) => s.type !== 'block' || s.projection === null))
  }
  t.true(full.parameterCount < model.parameterCount)
  const x = data.x.slice(0, 12 * 81)
  const fromFull = await full.predict(x, 12)
  const fromMode = await model.predict(x, 12, 'fsnn')
  t.deepEqual(Array.from(fromFull), Array.from(fromMode))
  const fromDsnn = await model.predict(x, 12, 'dsnn')
  t.notDeepEqual(Array.from(fromDsnn), Array.from(fromMode))
  t.deepEqual(await full.evaluate(data, { batchSize: 32 }), fsnnEval)

  const audit = await model.audit(x, 12)
  t.true(audit.passed, JSON.stringify(audit.offending))
  t.is(audit.stem, 'layers.0 (conv2d)')
  t.true((await full.audit(x, 12)).passed)
  await t.throwsAsync(full.evaluate(data, { mode: 'dsnn', batchSize: 32 }), {
    instanceOf: DualstreamError,
    message: /fsnn/,
  })
})

test('the audit fails a SEW-ADD network and names the layer and a value', async (t) => {
  // Low thresholds make both the stem and the branch fire often, so S + O = 2 somewhere.
  const sn = () => ifNode({ vThreshold: 0.2 })
  const addBlock = () =>
    sewBlock({ branch: [conv2d(4, 4, 3, { padding: 1, bias: false }), batchNorm2d(4), sn()], connect: 'add' })
  const model = sequential(
    [
      conv2d(1, 4, 3, { padding: 1, bias: false }),
      batchNorm2d(4),
      sn(),
      addBlock(),
      addBlock(),
      flatten(),
      linear(4 * 81, 3),
    ],
    { timeSteps: 3, inputShape: [1, 9, 9] },
  )
  const data = thirds(8)
  const audit = await model.audit(data.x, 8)
  t.false(audit.passed)
  t.is(audit.offending[0].name, 'layers.4.branch.0 (conv2d)')
  t.is(audit.offending[0].example, 2)
})

test('add is refused in a dual-stream block, and the trunk must be last', async (t) => {
  const err = t.throws(() => dualStreamBlock({ branch: [ifNode()], connect: 'add' as never }), {
    instanceOf: DualstreamError,
  })
  t.is(err?.code, 'ERR_ARG')
  t.regex(err!.message, /full-spike/)
  const e2 = t.throws(() => sequential([...dsnn(), flatten()], { timeSteps: 2, inputShape: [1, 9, 9] }), {
    instanceOf: DualstreamError,
  })
  t.is(e2?.code, 'ERR_SPEC')
  t.regex(e2!.message, /last layer/)
})

test('gradientNorms reports both streams per stage and leaves the weights untouched', async (t) => {
  const data = thirds(16)
  const model = sequential(dsnn(), { timeSteps: 3, seed: 4, inputShape: [1, 9, 9] })
  model.configureTraining(adam({ lr: 0.1 }))
  const { loss, norms } = await model.gradientNorms(data.x, data.y)
  t.true(Number.isFinite(loss))
  t.deepEqual(
    norms.map((n) => n.name),
    [0, 1, 2].flatMap((i) => [`layers.3.stages.${i}.O`, `layers.3.stages.${i}.A`]),
  )
  t.true(norms.every((n) => Number.isFinite(n.norm) && n.norm >= 0))
  // At zero init the last block is an identity, so the same gradient reaches its input and output on A.
  t.true(norms.find((n) => n.name.endsWith('2.A'))!.norm > 0)
  // Training-mode forwards use batch statistics, so an unchanged loss means unchanged weights.
  t.deepEqual(await model.gradientNorms(data.x, data.y), { loss, norms })
  await model.trainBatch(data.x, data.y)
  t.not((await model.gradientNorms(data.x, data.y)).loss, loss)
})
