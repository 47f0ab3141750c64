import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import test from 'ava'
import { modelLayers } from '../ts/cli/common'
import { resolveConfig } from '../ts/cli/train'
import {
  batchNorm2d,
  conv2d,
  convDsnn,
  dualBasicBlock,
  dualStream,
  lif,
  type ModelSpec,
  maxPool2d,
  sequential,
  surrogate,
} from '../ts/index'

const recipe = (name: string) =>
  JSON.parse(readFileSync(join(__dirname, '..', 'docs', 'recipes', name), 'utf8')) as Pick<
    ModelSpec,
    'layers' | 'timeSteps'
  >

test('docs/recipes/dsnn-32-64-t2.json is the network docs/cli.md describes, with its parameter count', (t) => {
  const neuron = () => lif({ tau: 2, detachReset: true, surrogate: surrogate.atan(2) })
  const block = (cin: number, cout: number, stride: number) =>
    dualBasicBlock(cin, cout, { connect: 'or', neuron, stride })
  const layers = [
    conv2d(1, 32, 3, { padding: 1, bias: false }),
    batchNorm2d(32),
    neuron(),
    maxPool2d(2),
    dualStream({
      stages: [block(32, 32, 1), block(32, 64, 2), block(64, 64, 1)],
      classes: 10,
      headPool: 'flatten',
      features: 64 * 7 * 7,
    }),
  ]
  const file = recipe('dsnn-32-64-t2.json')
  t.is(file.timeSteps, 2)
  t.deepEqual(file.layers, layers)
  // The CLI's dsnn3, which the fashion-mnist and mnist recipes train, is this network.
  t.deepEqual(convDsnn({ blocks: 3 }), layers)
  t.deepEqual(modelLayers('--model', 'dsnn3', { sampleShape: [1, 28, 28], numClasses: 10 }).layers, layers)
  t.is(
    (convDsnn({ blocks: 3, size: 30, width: 8 }).at(-1) as { head: { inFeatures: number } }).head.inFeatures,
    16 * 8 * 8,
  )
  t.throws(() => convDsnn({ blocks: 4 as 3 }), { message: /convDsnn blocks: expected 2 or 3/ })
  // By hand: stem conv 288 + BN 64; block 32->32: 2 x (9,216 + 64); block 32->64 stride 2: convs
  // 18,432 + 36,864, BNs 2 x 128, spike shortcut 2,048 + 128, AAP projection (depthwise 288,
  // 1x1 2,048, BN 128); block 64->64: 2 x (36,864 + 128); shared head 3,136 x 10 + 10.
  const model = sequential(file.layers, { timeSteps: 2, inputShape: [1, 28, 28] })
  t.is(model.parameterCount, 352 + 18_560 + 55_552 + 2_176 + 2_464 + 73_984 + 31_370)
})

test('docs/recipes/n-fashion-mnist-t2.json is a --config file of the N-Fashion-MNIST recipe docs/cli.md lists', (t) => {
  const path = join(__dirname, '..', 'docs', 'recipes', 'n-fashion-mnist-t2.json')
  const values = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>
  t.like(resolveConfig({}, { path, values }), {
    dataset: 'n-fashion-mnist',
    model: 'dsnn',
    'time-steps': 2,
    limit: 20000,
    'test-limit': 2000,
    epochs: 5,
    augment: 'flip',
    'batch-size': 64,
    optimizer: 'adam',
    lr: 2e-3,
  })
  const cli = readFileSync(join(__dirname, '..', 'docs', 'cli.md'), 'utf8')
  t.true(cli.includes('--config docs/recipes/n-fashion-mnist-t2.json'))
})

test('docs/recipes/dsnn-32-64-t2-stride2.json is dsnn-32-64-t2.json with a stride-2 stem instead of its max pool', (t) => {
  const base = recipe('dsnn-32-64-t2.json')
  const file = recipe('dsnn-32-64-t2-stride2.json')
  const [stem, bn, neuron, pool, trunk] = base.layers
  t.is(pool.type, 'maxPool2d')
  t.deepEqual(file.layers, [{ ...stem, stride: [2, 2] }, bn, neuron, trunk])
  t.is(file.timeSteps, 2)
  // No layer holds the pool's parameters, so the counts agree; the trunk sees 14x14 maps either way.
  const count = (layers: typeof base.layers) =>
    sequential(layers, { timeSteps: 2, inputShape: [1, 28, 28] }).parameterCount
  t.is(count(file.layers), count(base.layers))
})
