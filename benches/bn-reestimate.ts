// BatchNorm running statistics re-estimated after training (reestimateBatchNorm: the cumulative
// average over training batches, PyTorch's momentum=None as torch.optim.swa_utils.update_bn
// uses it), and the test accuracy of a checkpoint before and after: does a run's weight
// average want statistics of its own?
//   npx tsx benches/bn-reestimate.ts CHECKPOINT mnist|fashion-mnist AUGMENT [batches] [batchSize]
import { loadFashionMnist, loadMnist, Model, readCheckpoint, reestimateBatchNorm } from '../ts'
import { AUGMENTS, type Augment, augmentTrainSet } from '../ts/cli/augment'
import { record } from './record'

const [path, dataset, augment, batchesArg, batchSizeArg] = process.argv.slice(2)
if (!path || (dataset !== 'mnist' && dataset !== 'fashion-mnist') || !AUGMENTS.includes(augment as Augment)) {
  console.error('usage: tsx benches/bn-reestimate.ts CHECKPOINT mnist|fashion-mnist AUGMENT [batches] [batchSize]')
  process.exit(2)
}
const batches = Number(batchesArg ?? 125)
const batchSize = Number(batchSizeArg ?? 64)

async function main() {
  const data = dataset === 'mnist' ? loadMnist() : loadFashionMnist()
  // The checkpoint's weights (with --ema, the average's) and the BN statistics training left.
  const model = Model.fromCheckpoint(readCheckpoint(path))
  const accuracies = async (m: Model) => ({
    fsnn: (await m.evaluate(data.test, { mode: 'fsnn' })).accuracy,
    dsnn: (await m.evaluate(data.test, { mode: 'dsnn' })).accuracy,
  })
  const before = await accuracies(model)
  const train = augmentTrainSet('augment', data.train, augment as Augment)
  const after = await accuracies(await reestimateBatchNorm(model, train, { batches, batchSize, seed: 12345 }))
  record('bn-reestimate', `tsx benches/bn-reestimate.ts ${process.argv.slice(2).join(' ')}`, {
    checkpoint: path,
    dataset,
    augment,
    batches,
    batchSize,
    before,
    after,
  })
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
