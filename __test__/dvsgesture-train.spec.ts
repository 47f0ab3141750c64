// The README's DVS Gesture recipe, end to end on a folder our own writers make: DvsGesture reads
// the AEDAT 3.1 files and label windows, the DataLoader integrates frames and crops, and the
// 7B-Net DSNN trains on them and predicts with its full-spike network.

import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { adam, DataLoader, DvsGesture, dsnn7b, sequential, transforms, writeEvents } from '../ts'

function recording(seed: number, events: number) {
  let s = seed
  const next = () => {
    s = (s * 1103515245 + 12345) >>> 0
    return s / 2 ** 32
  }
  const t = Float64Array.from({ length: events }, (_, i) => 1_000 + i * 50)
  return {
    width: 128,
    height: 128,
    t,
    x: Uint16Array.from({ length: events }, () => Math.floor(next() * 128)),
    y: Uint16Array.from({ length: events }, () => Math.floor(next() * 128)),
    p: Uint8Array.from({ length: events }, () => (next() < 0.5 ? 1 : 0)),
  }
}

test('a DVS Gesture folder trains the 7B-Net DSNN through DvsGesture and the DataLoader', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dualstream-gesture-'))
  const dir = join(root, 'DvsGesture')
  mkdirSync(dir)
  const names = ['user01_fluorescent', 'user02_lab']
  for (const [i, name] of names.entries()) {
    const rec = recording(i + 1, 6_000)
    await writeEvents(join(dir, `${name}.aedat`), rec, { format: 'aedat3' })
    // Three windows of 2,000 events each, classes 1..3 -> labels 0..2.
    const rows = [0, 1, 2].map((w) => `${w + 1},${rec.t[w * 2000]},${rec.t[w * 2000 + 1999] + 1}`)
    writeFileSync(join(dir, `${name}_labels.csv`), `class,startTime_usec,endTime_usec\n${rows.join('\n')}\n`)
  }
  writeFileSync(join(dir, 'trials_to_train.txt'), `${names[0]}.aedat\n`)
  writeFileSync(join(dir, 'trials_to_test.txt'), `${names[1]}.aedat\n`)

  const train = new DvsGesture(root, { split: 'train' })
  const testSet = new DvsGesture(root, { split: 'test' })
  t.is(train.length, 3)
  t.is(testSet.length, 3)

  // The recipe's pipeline with T = 4 instead of 16 to keep the test short.
  const net = dsnn7b({ timeSteps: 4 })
  const frames = { split: 'number', frames: net.timeSteps } as const
  const model = sequential(net.layers, {
    timeSteps: net.timeSteps,
    inputShape: net.inputShape,
    encoding: net.encoding,
    seed: 0,
  })
  model.configureTraining(adam({ lr: 1e-3 }))
  const loader = new DataLoader(train, {
    batchSize: 3,
    shuffle: true,
    seed: 0,
    prefetch: 1,
    pipeline: { frames, transforms: [transforms.randomCrop(128, 4)] },
  })
  let steps = 0
  for await (const b of loader.epoch(0)) {
    t.deepEqual([...b.shape], [4, 3, 2, 128, 128])
    // Frames are event counts: whole numbers, and every event of a window lands in some frame.
    t.true(b.x.every((v) => Number.isInteger(v) && v >= 0))
    const result = await model.trainBatch(b.x, b.y)
    t.true(Number.isFinite(result.loss))
    steps++
  }
  t.is(steps, 1)
  for await (const b of new DataLoader(testSet, { batchSize: 3, pipeline: { frames } }).epoch(0)) {
    const counts = b.x.reduce((a, v) => a + v, 0)
    t.is(counts, 3 * 2000, 'uncropped test frames hold every event of the three windows')
    const logits = await model.predict(b.x, b.size, 'fsnn')
    t.is(logits.length, 3 * 11)
    t.true(logits.every(Number.isFinite))
  }
  await model.dispose()
})
