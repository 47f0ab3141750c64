import { existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import type { BatchEnd, EpochEnd, FitState } from '../ts/index'
import {
  adam,
  batchNorm2d,
  conv2d,
  DualstreamError,
  decodeSafetensors,
  dropout,
  dualBasicBlock,
  dualStream,
  encodeSafetensors,
  flatten,
  lif,
  linear,
  Model,
  maxPool2d,
  readCheckpoint,
  readSafetensors,
  sequential,
  TensorDataset,
  writeSafetensors,
} from '../ts/index'
import { writeFileAtomic } from '../ts/internal'
import { syntheticImages } from './synthetic'

const tmp = () => mkdtempSync(join(tmpdir(), 'dualstream-ckpt-'))

test('safetensors files follow the format: LE header length, padded JSON header, contiguous LE data', (t) => {
  const a = { name: 'a', shape: [2, 2], data: new Float32Array([1, -2, 3.5, 0.25]) }
  const b = { name: 'b.c', shape: [3], data: new Float32Array([7, 8, 9]) }
  const bytes = encodeSafetensors([a, b], { note: 'hi' })
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const n = Number(view.getBigUint64(0, true))
  t.is(n % 8, 0, 'the data starts 8-byte aligned')
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)))
  t.deepEqual(header.__metadata__, { note: 'hi' })
  t.deepEqual(header.a, { dtype: 'F32', shape: [2, 2], data_offsets: [0, 16] })
  t.deepEqual(header['b.c'], { dtype: 'F32', shape: [3], data_offsets: [16, 28] })
  t.is(bytes.length, 8 + n + 28)
  t.is(view.getFloat32(8 + n + 8, true), 3.5)
  t.is(view.getFloat32(8 + n + 16, true), 7)

  // A file written by hand per the format (unpadded header, tensors in reverse order) reads back.
  const hand = JSON.stringify({
    y: { dtype: 'F32', shape: [1], data_offsets: [4, 8] },
    x: { dtype: 'F32', shape: [1], data_offsets: [0, 4] },
  })
  const file = new Uint8Array(8 + hand.length + 8)
  const fv = new DataView(file.buffer)
  fv.setBigUint64(0, BigInt(hand.length), true)
  file.set(new TextEncoder().encode(hand), 8)
  fv.setFloat32(8 + hand.length, 1.5, true)
  fv.setFloat32(8 + hand.length + 4, -4, true)
  const decoded = decodeSafetensors(file)
  t.deepEqual(
    decoded.tensors.map((x) => [x.name, [...x.data]]),
    [
      ['y', [-4]],
      ['x', [1.5]],
    ],
  )
  t.deepEqual(decoded.metadata, {})
  const back = decodeSafetensors(bytes)
  t.deepEqual(
    back.tensors.map((x) => [x.name, x.shape, [...x.data]]),
    [
      ['a', [2, 2], [1, -2, 3.5, 0.25]],
      ['b.c', [3], [7, 8, 9]],
    ],
  )
})

test('corrupt and truncated files fail naming the file and the byte offset', (t) => {
  const dir = tmp()
  const bytes = encodeSafetensors([{ name: 'w', shape: [4], data: new Float32Array([1, 2, 3, 4]) }])
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true))
  const cases: [string, Uint8Array, RegExp][] = [
    ['short.safetensors', bytes.subarray(0, 5), /short\.safetensors: at byte offset 5: the file ends after 5 bytes/],
    [
      'cut.safetensors',
      bytes.subarray(0, bytes.length - 6),
      new RegExp(
        `cut\\.safetensors: at byte offset ${bytes.length - 6}: tensor w: its data runs to byte ${bytes.length} but the file ends at byte ${bytes.length - 6} \\(truncated\\)`,
      ),
    ],
    [
      'header.safetensors',
      bytes.subarray(0, 20),
      /header\.safetensors: at byte offset 0: the header length \d+ runs past the end of the file \(20 bytes\)/,
    ],
  ]
  const garbled = bytes.slice()
  garbled[8 + 1] = 0x3a // ':' where the first key's quote was
  cases.push([
    'json.safetensors',
    garbled,
    /json\.safetensors: at byte offset 9: the JSON header \(bytes 8 to \d+\) is invalid/,
  ])
  for (const [name, data, message] of cases) {
    const path = join(dir, name)
    writeFileSync(path, data)
    const err = t.throws(() => readSafetensors(path), { instanceOf: DualstreamError, message })
    t.is(err?.code, 'ERR_FORMAT')
  }
  t.is(n % 8, 0)
})

test('atomic writes leave the complete file and no temporary file; a failed write leaves nothing', (t) => {
  const dir = tmp()
  const path = join(dir, 'x.safetensors')
  writeSafetensors(path, [{ name: 'w', shape: [2], data: new Float32Array([1, 2]) }])
  writeSafetensors(path, [{ name: 'w', shape: [3], data: new Float32Array([1, 2, 3]) }])
  t.deepEqual(readdirSync(dir), ['x.safetensors'])
  t.deepEqual([...readSafetensors(path).tensors[0].data], [1, 2, 3])
  const missing = join(dir, 'no-such-folder', 'y.json')
  t.throws(() => writeFileAtomic(missing, '{}'), { code: 'ERR_IO', message: /cannot write .*y\.json/ } as never)
  t.false(existsSync(missing))
  t.deepEqual(readdirSync(dir), ['x.safetensors'])
})

// Four classes: the brightest quadrant of an 8x8 image, with noise.
function quadrants(n: number, seed: number): TensorDataset {
  const { x: images, y: labels } = syntheticImages({
    n,
    sampleShape: [1, 8, 8],
    classes: 4,
    seed,
    value: (label, p, r) => {
      const q = (p >= 32 ? 2 : 0) + (p % 8 >= 4 ? 1 : 0)
      return (q === label ? 0.7 : 0.2) + 0.6 * r
    },
  })
  return new TensorDataset({ name: 'quadrants', images, labels, sampleShape: [1, 8, 8], numClasses: 4 })
}

const dualNet = () => [
  conv2d(1, 4, 3, { padding: 1, bias: false }),
  batchNorm2d(4),
  lif(),
  maxPool2d(2),
  dualStream({
    stages: [dualBasicBlock(4, 4, { connect: 'or' })],
    classes: 4,
    headPool: 'flatten',
    features: 4 * 4 * 4,
  }),
]
const dropoutNet = () => [
  conv2d(1, 4, 3, { padding: 1 }),
  batchNorm2d(4),
  lif(),
  flatten(),
  dropout(0.3),
  linear(256, 4),
]

test('a model saved to a checkpoint loads without the code that built it and predicts the same', async (t) => {
  const data = quadrants(64, 1)
  const model = sequential(dualNet(), { timeSteps: 2, seed: 5 })
  await model.fit(data, { epochs: 1, batchSize: 16, optimizer: adam({ lr: 1e-2 }) })
  const path = join(tmp(), 'm.safetensors')
  await model.save(path, { metadata: { note: 'test' } })
  const ckpt = readCheckpoint(path)
  t.deepEqual(ckpt.spec, model.spec)
  t.deepEqual(ckpt.metadata, { note: 'test' })
  t.true(
    ckpt.tensors.some((x) => x.name.endsWith('running_mean')),
    'BN statistics are saved',
  )
  t.true(ckpt.trainer.some((x) => x.name === 'schedule/step'))
  t.true(
    ckpt.trainer.some((x) => /^optimizer\/0\/.+\/exp_avg_sq$/.test(x.name)),
    'Adam moments are saved',
  )
  const loaded = await Model.load(path)
  const [batch] = data.batches(16)
  for (const mode of ['fsnn', 'dsnn'] as const) {
    t.deepEqual(await loaded.predict(batch.x, 16, mode), await model.predict(batch.x, 16, mode), mode)
  }
  await Promise.all([model.dispose(), loaded.dispose()])
})

test('loading a checkpoint of another architecture names the tensor and both shapes', async (t) => {
  const dir = tmp()
  const small = sequential([conv2d(1, 4, 3, { padding: 1 }), batchNorm2d(4), lif(), flatten(), linear(256, 4)], {
    timeSteps: 2,
    inputShape: [1, 8, 8],
  })
  const wide = sequential([conv2d(1, 6, 3, { padding: 1 }), batchNorm2d(6), lif(), flatten(), linear(384, 4)], {
    timeSteps: 2,
    inputShape: [1, 8, 8],
  })
  const path = join(dir, 'small.safetensors')
  await small.save(path)
  await t.throwsAsync(wide.loadWeights(path), {
    code: 'ERR_SHAPE',
    message: /small\.safetensors: tensor layers\.0\.weight: expected shape \[6, 1, 3, 3\], got \[4, 1, 3, 3\]/,
  } as never)
  const deeper = sequential(
    [conv2d(1, 4, 3, { padding: 1 }), batchNorm2d(4), lif(), conv2d(4, 4, 1), flatten(), linear(256, 4)],
    { timeSteps: 2, inputShape: [1, 8, 8] },
  )
  await t.throwsAsync(deeper.loadWeights(path), {
    message: /tensor layers\.3\.weight \(shape \[4, 4, 1, 1\]\) is missing from the checkpoint/,
  })
  await Promise.all([small.dispose(), wide.dispose(), deeper.dispose()])
})

test('fit stopped mid-epoch and resumed from its checkpoint ends exactly like an uninterrupted fit', async (t) => {
  const data = quadrants(96, 2)
  // With a weight average (ema) the checkpoint holds the average as the model's tensors and the
  // trained weights in the trainer's state; the validation of each epoch is the average's.
  const runs = [
    { layers: dualNet },
    { layers: dropoutNet },
    { layers: dualNet, ema: { decay: 0.8, buffers: true }, validation: data },
    { layers: dropoutNet, ema: { decay: 0.8 }, validation: data },
  ]
  for (const { layers, ...averaging } of runs) {
    const options = {
      epochs: 3,
      batchSize: 16,
      optimizer: adam({ lr: 5e-3 }),
      schedule: 'cosine' as const,
      seed: 9,
      ...averaging,
    }
    const strip = (e: EpochEnd) => ({ ...e, seconds: 0, samplesPerSecond: 0 })
    const whole = sequential(layers(), { timeSteps: 2, seed: 4 })
    const wholeBatches: number[] = []
    const expected = await whole.fit(data, { ...options, onBatchEnd: (b: BatchEnd) => void wholeBatches.push(b.loss) })

    const first = sequential(layers(), { timeSteps: 2, seed: 4 })
    const controller = new AbortController()
    const firstBatches: number[] = []
    const stopped = await first.fit(data, {
      ...options,
      signal: controller.signal,
      onBatchEnd: (b: BatchEnd, state: FitState) => {
        firstBatches.push(b.loss)
        // Stop in the middle of the second epoch.
        if (b.epoch === 1 && b.step === 2) controller.abort()
        t.is(state.step, b.step)
      },
    })
    t.true(stopped.stopped)
    t.deepEqual([stopped.state.epoch, stopped.state.step], [1, 2])
    const path = join(tmp(), 'last.safetensors')
    await first.save(path, { fit: stopped.state })
    await first.dispose()

    const ckpt = readCheckpoint(path)
    const resumed = Model.fromCheckpoint(ckpt)
    const rest: number[] = []
    const result = await resumed.fit(data, {
      ...options,
      resume: ckpt,
      onBatchEnd: (b: BatchEnd) => void rest.push(b.loss),
    })
    t.deepEqual([...firstBatches, ...rest], wholeBatches, 'every step loss, bit for bit')
    t.deepEqual(result.epochs.map(strip), expected.epochs.map(strip))
    if (options.ema) {
      t.true(expected.epochs.every((e) => e.weights === 'average' && e.validation !== undefined))
      t.deepEqual(
        ckpt.trainer.filter((x) => x.name.startsWith('ema/slot/')).length,
        whole
          .stateTensors()
          .filter((x) => !x.name.endsWith('rng_state') && (options.ema.buffers || !x.name.includes('.running_')))
          .length,
        'the trained weights (and BN statistics when averaged) are kept aside',
      )
    }
    t.deepEqual(resumed.stateTensors(), whole.stateTensors())
    const [batch] = data.batches(16)
    t.deepEqual(await resumed.predict(batch.x, 16), await whole.predict(batch.x, 16))
    // A resume without the trainer state would silently restart Adam and the schedule: refused.
    const cold = Model.fromCheckpoint(ckpt)
    await t.throwsAsync(cold.fit(data, { ...options, resume: { ...ckpt, trainer: [] } }), { message: /schedule\/step/ })
    await Promise.all([whole.dispose(), resumed.dispose(), cold.dispose()])
  }
})

test('checkpoint bytes are plain safetensors: the spec sits in the metadata as JSON', async (t) => {
  const model = sequential([conv2d(1, 2, 3), flatten(), linear(72, 3)], { timeSteps: 3, inputShape: [1, 8, 8] })
  const path = join(tmp(), 'p.safetensors')
  await model.save(path)
  const raw = readFileSync(path)
  const n = Number(raw.readBigUInt64LE(0))
  const header = JSON.parse(raw.toString('utf8', 8, 8 + n))
  t.deepEqual(JSON.parse(header.__metadata__.spec), model.spec)
  t.deepEqual(header['layers.2.weight'].shape, [3, 72])
  await model.dispose()
})

test('a safetensors file that is not a dualstream checkpoint is refused as such', (t) => {
  const path = join(tmp(), 'plain.safetensors')
  writeSafetensors(path, [{ name: 'w', shape: [1], data: new Float32Array([1]) }])
  t.throws(() => readCheckpoint(path), {
    code: 'ERR_FORMAT',
    message: /plain\.safetensors: not a dualstream checkpoint/,
  } as never)
})
