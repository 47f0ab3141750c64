// Image folders from TypeScript: torchvision's listing order, the evaluation transform against
// torchvision's output, Model.fit / evaluate on batches the loader decodes ahead, broken files,
// and the CLI's --dataset DIR on a tiny ImageNet-style tree. Reference values come from
// crates/data/tests/fixtures/imagefolder.json (scripts/reference/imagefolder_fixture.py).

import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import {
  IMAGENET_MEAN,
  IMAGENET_STD,
  ImageFolder,
  imageTransforms,
  LoaderData,
  TensorDataset,
  transforms,
} from '../ts/data'
import { convSnn, sequential } from '../ts/index'
import { readCheckpoint } from '../ts/model'
import { sgd } from '../ts/optim'
import { flags, run, summaryOf } from './cli-run'

const fixtures = join(__dirname, '..', 'crates', 'data', 'tests', 'fixtures')
const root = join(fixtures, 'imagefolder')
const reference = JSON.parse(readFileSync(join(fixtures, 'imagefolder.json'), 'utf8'))
const tmp = () => mkdtempSync(join(tmpdir(), 'dualstream-imagefolder-'))
/** One epoch of the plain conv SNN on 16x16 crops. */
const tinySnn = flags({ model: 'snn', 'image-size': 16, epochs: 1 })

test('ImageFolder lists classes and files in torchvision ImageFolder order', (t) => {
  for (const split of ['train', 'test'] as const) {
    const folder = new ImageFolder(root, { split })
    const expected = reference.order[split === 'train' ? 'train' : 'val']
    t.deepEqual([...folder.classNames], expected.classes)
    t.is(folder.numClasses, 4)
    t.deepEqual(
      Array.from({ length: folder.length }, (_, i) => {
        const s = folder.get(i)
        return [s.file.slice(root.length + 1), s.label]
      }),
      expected.samples,
    )
    t.deepEqual(
      [...folder.labels],
      expected.samples.map((s: [string, number]) => s[1]),
    )
  }
  t.throws(() => new ImageFolder(join(root, 'train', 'cat')), { message: /train/ })
  t.throws(() => new ImageFolder(root).get(10), { message: /0\.\.9/ })
})

test('the evaluation transform matches torchvision (resize, centre crop, normalise) within the JPEG tolerance', async (t) => {
  const folder = new ImageFolder(root)
  const data = folder.data({
    transforms: imageTransforms.evaluation({ size: reference.crop, resize: reference.resize }),
  })
  t.deepEqual(data.sampleShape, [3, reference.crop, reference.crop])
  const plane = reference.crop * reference.crop
  let checked = 0
  for await (const b of data.batches(4)) {
    for (let j = 0; j < b.size; j++) {
      const im = reference.images[checked + j]
      // Pillow's 8-bit HWC output, then ToTensor and Normalize. Tolerance in 8-bit steps (see
      // crates/data/tests/integration/imagefolder.rs): PNG 1, grey/CMYK JPEG 2, 4:4:4 3, 4:2:0 9.
      const file: string = im.file
      const steps = file.endsWith('.png') ? 1 : im.mode === 'L' || im.mode === 'CMYK' ? 2 : file.includes('444') ? 3 : 9
      let max = 0
      for (let c = 0; c < 3; c++) {
        for (let p = 0; p < plane; p++) {
          const want = (im.evaluation[p * 3 + c] / 255 - IMAGENET_MEAN[c]) / IMAGENET_STD[c]
          const got = b.x[j * 3 * plane + c * plane + p]
          max = Math.max(max, Math.abs(got - want) * IMAGENET_STD[c] * 255)
        }
      }
      t.true(max <= steps + 1e-3, `${file}: ${max} steps`)
      t.is(b.y[j], reference.order.train.samples[checked + j][1])
    }
    checked += b.size
  }
  t.is(checked, 10)
})

test('Model.fit and evaluate take an image folder; evaluate equals the same batches held in memory', async (t) => {
  const folder = new ImageFolder(root)
  const size = 16
  const evalData = folder.data({ size, transforms: imageTransforms.evaluation({ size }) })
  // The same prepared samples as a TensorDataset.
  const images = new Float32Array(folder.length * 3 * size * size)
  const labels = new Uint32Array(folder.length)
  let n = 0
  for await (const b of evalData.batches(3)) {
    images.set(b.x, n * 3 * size * size)
    labels.set(b.y, n)
    n += b.size
  }
  const memory = new TensorDataset({ name: 'held', images, labels, sampleShape: [3, size, size], numClasses: 4 })
  const model = sequential(convSnn({ inChannels: 3, size, classes: 4, widths: [4, 4] }), { timeSteps: 2, seed: 3 })
  const trainData = folder.data({ size: 16, prefetch: 1 })
  t.true(trainData instanceof LoaderData)
  const fit = await model.fit(trainData, { epochs: 2, batchSize: 4, optimizer: sgd({ lr: 0.05 }) })
  t.is(fit.epochs.length, 2)
  t.true(fit.epochs.every((e) => Number.isFinite(e.loss) && e.loss > 0))
  const fromFolder = await model.evaluate(evalData, { batchSize: 4 })
  const fromMemory = await model.evaluate(memory, { batchSize: 4 })
  t.is(fromFolder.count, 10)
  t.is(fromFolder.accuracy, fromMemory.accuracy)
  t.true(Math.abs(fromFolder.loss - fromMemory.loss) < 1e-6, `${fromFolder.loss} vs ${fromMemory.loss}`)
  // Training batches are seeded per (seed, epoch, index): the same epoch twice is identical.
  const first: number[] = []
  const second: number[] = []
  for await (const b of trainData.batches(5, { shuffle: true, seed: 9, epoch: 1 })) first.push(...b.x.subarray(0, 50))
  for await (const b of trainData.batches(5, { shuffle: true, seed: 9, epoch: 1 })) second.push(...b.x.subarray(0, 50))
  t.deepEqual(first, second)
})

test('a broken image fails the batch with an error naming the file', async (t) => {
  const dir = tmp()
  cpSync(join(root, 'train'), join(dir, 'train'), { recursive: true })
  copyFileSync(join(fixtures, 'imagefolder-broken', 'truncated.jpg'), join(dir, 'train', 'ant', 'zz-truncated.jpg'))
  const data = new ImageFolder(dir).data({ size: 8, transforms: [transforms.resize([8, 8])] })
  const err = await t.throwsAsync(async () => {
    for await (const _ of data.batches(4)) {
      /* drain */
    }
  })
  t.is((err as { code?: string }).code, 'ERR_FORMAT')
  t.regex(err!.message, /zz-truncated\.jpg/)
})

test('the CLI trains and evaluates on an image folder given as --dataset DIR', (t) => {
  const dir = join(tmp(), 'run')
  const data = tmp()
  cpSync(root, data, { recursive: true })
  mkdirSync(join(data, 'unused'))
  const summary = summaryOf(t, run('train', '--dataset', data, ...tinySnn, '--batch-size', '5', '--out', dir, '--json'))
  t.like(summary, { trainSamples: 10, testSamples: 10 })
  t.like(readCheckpoint(join(dir, 'checkpoints', 'last.safetensors')).spec, {
    encoding: 'direct',
    inputShape: [3, 16, 16],
  })
  // evaluate takes the crop size from the checkpoint's input shape.
  const e = run('evaluate', dir, '--json', '--mode', 'fsnn')
  t.is(e.status, 0, e.stderr)
  t.is(JSON.parse(e.stdout).results[0].accuracy, summary.testAccuracy)
  // A folder with train/ but val/ missing a class is refused, naming the class.
  const bad = tmp()
  cpSync(root, bad, { recursive: true })
  cpSync(join(bad, 'val', 'cat'), join(bad, 'val', 'Cat'), { recursive: true })
  const b = run('train', '--dataset', bad, ...tinySnn, '--out', join(tmp(), 'r'))
  t.not(b.status, 0)
  t.regex(b.stderr, /Cat/)
})
