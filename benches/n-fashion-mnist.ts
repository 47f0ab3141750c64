// Synthetic N-Fashion-MNIST through the whole event path: Fashion-MNIST images -> synthetic
// saccade events (34 x 34 sensor) -> frames split by number -> DataLoader (shuffle, random crop,
// prefetch) -> convDsnn on [T, N, 2, 34, 34] -> full-spike (and dual-stream) test accuracy.
//   npx tsx benches/n-fashion-mnist.ts [--train 10000] [--test 2000] [--epochs 3] [--time-steps 4]
import {
  adam,
  convDsnn,
  DataLoader,
  type FrameSpec,
  FramesDataset,
  type InferenceMode,
  loadFashionMnist,
  type Model,
  NFashionMnist,
  schedules,
  sequential,
  transforms,
} from '../ts/index'
import { record } from './record'

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const TRAIN = arg('train', 10_000)
const TEST = arg('test', 2_000)
const EPOCHS = arg('epochs', 3)
const T = arg('time-steps', 4)
const BATCH = arg('batch-size', 64)
const SEED = 0
const LR = 2e-3

async function accuracy(model: Model, data: FramesDataset, mode: InferenceMode): Promise<number> {
  let correct = 0
  for await (const b of new DataLoader(data, { batchSize: 256, pipeline: {} }).epoch(0)) {
    const logits = await model.predict(b.x, b.size, mode)
    const classes = logits.length / b.size
    for (let j = 0; j < b.size; j++) {
      let best = 0
      for (let c = 1; c < classes; c++) if (logits[j * classes + c] > logits[j * classes + best]) best = c
      if (best === b.y[j]) correct++
    }
  }
  return correct / data.length
}

async function main() {
  const started = performance.now()
  const fm = loadFashionMnist()
  const frames: FrameSpec = { split: 'number', frames: T }
  const convertStart = performance.now()
  let eventCount = 0
  const trainEvents = new NFashionMnist(fm.train.sample(TRAIN, SEED))
  const testEvents = new NFashionMnist(fm.test.sample(TEST, SEED))
  // Count events on a few samples for the record.
  for (let i = 0; i < 100; i++) eventCount += (await trainEvents.get(i)).events.t.length
  const train = await FramesDataset.from(trainEvents, frames, { batchSize: 128 })
  const test = await FramesDataset.from(testEvents, frames, { batchSize: 128 })
  const convertSeconds = (performance.now() - convertStart) / 1000
  console.log(
    `converted ${TRAIN} + ${TEST} images to events and frames in ${convertSeconds.toFixed(1)} s (${(eventCount / 100).toFixed(0)} events per sample)`,
  )

  const layers = convDsnn({ inChannels: 2, size: 34, classes: 10 })
  const model = sequential(layers, { timeSteps: T, inputShape: [2, 34, 34], encoding: 'sequence', seed: SEED })
  const stepsPerEpoch = Math.floor(TRAIN / BATCH)
  model.configureTraining(adam({ lr: LR }), schedules.cosine({ totalSteps: EPOCHS * stepsPerEpoch }))
  const loader = new DataLoader(train, {
    batchSize: BATCH,
    shuffle: true,
    seed: SEED,
    dropLast: true,
    prefetch: 2,
    pipeline: { transforms: [transforms.randomCrop(34, 2), transforms.horizontalFlip()] },
  })
  const trainStart = performance.now()
  const epochs: { epoch: number; loss: number; accuracy: number; seconds: number; dataWaitSeconds: number }[] = []
  for (let epoch = 0; epoch < EPOCHS; epoch++) {
    const e0 = performance.now()
    let loss = 0,
      correct = 0,
      count = 0,
      wait = 0
    for await (const b of loader.epoch(epoch)) {
      const r = await model.trainBatch(b.x, b.y)
      loss += r.loss * r.count
      correct += r.correct
      count += r.count
      wait += b.waitMs
    }
    const info = {
      epoch,
      loss: loss / count,
      accuracy: correct / count,
      seconds: (performance.now() - e0) / 1000,
      dataWaitSeconds: wait / 1000,
    }
    epochs.push(info)
    console.log(JSON.stringify(info))
  }
  const trainSeconds = (performance.now() - trainStart) / 1000
  const fsnn = await accuracy(model, test, 'fsnn')
  const dsnn = await accuracy(model, test, 'dsnn')
  const wallSeconds = (performance.now() - started) / 1000
  record(
    'n-fashion-mnist',
    `npx tsx benches/n-fashion-mnist.ts --train ${TRAIN} --test ${TEST} --epochs ${EPOCHS} --time-steps ${T} --batch-size ${BATCH}`,
    {
      model: 'convDsnn({ inChannels: 2, size: 34, classes: 10 })',
      data: {
        train: TRAIN,
        test: TEST,
        sensor: [34, 34],
        frames,
        meanEventsPerSample: eventCount / 100,
        synthetic: 'defaults (threshold 0.25, eps 0.1, 3 x 100 ms saccades)',
      },
      training: {
        epochs: EPOCHS,
        batchSize: BATCH,
        optimizer: `adam lr ${LR}, cosine`,
        augmentation: 'randomCrop(34, padding 2) + horizontalFlip',
      },
      testAccuracyFsnn: fsnn,
      testAccuracyDsnn: dsnn,
      convertSeconds,
      trainSeconds,
      wallSeconds,
      epochs,
    },
  )
  await model.dispose()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
