// Hostile input: absurd sizes, concurrent calls, damaged checkpoints and run folders. Each
// case must end in a DualstreamError naming what was wrong (CLI: one `dualstream:` line, exit
// code 2), never an abort, a hang, a stack trace or a silently wrong result.

import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { readSafetensors, writeSafetensors } from '../ts/checkpoint'
import { TensorDataset } from '../ts/data'
import type { LayerSpec } from '../ts/index'
import {
  conv2d,
  DualstreamError,
  DvsGesture,
  flatten,
  lif,
  linear,
  Model,
  readGestureLabels,
  sequential,
  sgd,
} from '../ts/index'
import { readCheckpoint } from '../ts/model'

const cli = join(__dirname, '..', 'dist', 'cli.js')
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 })
const tmp = () => mkdtempSync(join(tmpdir(), 'dualstream-hostile-'))

/** Exit code 2 and one `dualstream: ...` line matching `message` as the last line on stderr
 * (after any progress lines), no stack trace. */
function failsCleanly(t: import('ava').ExecutionContext, args: string[], message: RegExp): void {
  const r = run(...args)
  t.is(r.status, 2, `${args.join(' ')}: ${r.stderr}`)
  const lines = r.stderr.trim().split('\n')
  t.is(lines.filter((l) => l.startsWith('dualstream: ')).length, 1, r.stderr)
  t.false(
    lines.some((l) => /^\s+at /.test(l)),
    r.stderr,
  )
  t.regex(lines[lines.length - 1], /^dualstream: /)
  t.regex(lines[lines.length - 1], message, args.join(' '))
}

function tinyData(n = 64): TensorDataset {
  const images = new Float32Array(n * 4)
  const labels = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    labels[i] = i % 2
    images.fill(labels[i] ? 0.9 : 0.1, i * 4, i * 4 + 4)
  }
  return new TensorDataset({ name: 'tiny', images, labels, sampleShape: [1, 2, 2], numClasses: 2 })
}

const tinyLayers = (): LayerSpec[] => [flatten(), linear(4, 2)]

/** A data folder of `n` samples [1, 2, 2] with two classes; `classes` written as metadata. */
function dataFolder(n: number, classes?: string): string {
  const dir = tmp()
  for (const split of ['train', 'test']) {
    const images = new Float32Array(n * 4)
    const labels = new Float32Array(n)
    for (let i = 0; i < n; i++) {
      labels[i] = i % 2
      images.fill(labels[i] ? 0.9 : 0.1, i * 4, i * 4 + 4)
    }
    writeSafetensors(
      join(dir, `${split}.safetensors`),
      [
        { name: 'images', shape: [n, 1, 2, 2], data: images },
        { name: 'labels', shape: [n], data: labels },
      ],
      classes === undefined ? {} : { classes },
    )
  }
  return dir
}

function modelJson(layers: unknown, timeSteps = 2): string {
  const path = join(tmp(), 'model.json')
  writeFileSync(path, JSON.stringify({ timeSteps, layers }))
  return path
}

async function rejectsWith(t: import('ava').ExecutionContext, p: () => unknown, code: string, message: RegExp) {
  const err = await t.throwsAsync(async () => p(), { instanceOf: DualstreamError })
  t.is(err?.code, code, err?.message)
  t.regex(err?.message ?? '', message)
}

test('absurd model sizes are refused at build with ERR_SPEC naming the layer', async (t) => {
  const build =
    (layers: LayerSpec[], timeSteps = 2, inputShape = [1, 28, 28]) =>
    () =>
      sequential(layers, { timeSteps, inputShape })
  await rejectsWith(t, build([conv2d(1, 1e9, 3)]), 'ERR_SPEC', /layers\[0\] \(conv2d\).*allocation limit/)
  await rejectsWith(
    t,
    build([flatten(), linear(1e6, 1e6)], 2, [1e6]),
    'ERR_SPEC',
    /layers\[1\] \(linear\).*allocation limit/,
  )
  await rejectsWith(t, build([conv2d(1, 8, 3)], 1e7), 'ERR_SPEC', /inputShape: expected T x inputShape/)
  await rejectsWith(t, build([conv2d(1, 4096, 3)], 1e5), 'ERR_SPEC', /layers\.0 .*activations/)
  await rejectsWith(t, build([conv2d(1, 8, 3)], 2 ** 31), 'ERR_SPEC', /inputShape|activations/)
  await rejectsWith(t, build([flatten()], 2, [1, 1e6, 1e6]), 'ERR_SPEC', /inputShape/)
  // The builder refuses a padding no image needs; a hand-written spec is refused by the engine.
  await rejectsWith(
    t,
    () => conv2d(1, 1, 3, { padding: 1e9 }),
    'ERR_ARG',
    /conv2d padding: expected an integer in \[0, 65536\]/,
  )
  const padded = { ...conv2d(1, 1, 3), padding: [1e9, 1e9] } as LayerSpec
  await rejectsWith(t, build([padded]), 'ERR_SPEC', /layers\[0\] \(conv2d\)\.padding/)
  const nearMax = { ...conv2d(1, 1, 3), padding: [60000, 60000] } as LayerSpec
  await rejectsWith(t, build([nearMax], 64), 'ERR_SPEC', /activations/)
})

test('an activation past the limit is named once by its layer, with T x 1 x its output values', async (t) => {
  // conv2d(1, 4096, 3) on 28x28: 4096 x 26 x 26 = 2,768,896 values a step, 1.1 TB over 1e5 steps.
  const err = t.throws(() => sequential([conv2d(1, 4096, 3)], { timeSteps: 1e5, inputShape: [1, 28, 28] }), {
    instanceOf: DualstreamError,
  })
  t.is(err?.code, 'ERR_SPEC')
  t.regex(
    err?.message ?? '',
    /^model spec, layers\.0 \(conv2d\): expected the activations of one sample over T steps \(T x 1 x output values, f32\) within the allocation limit of \d+ bytes \(set DUALSTREAM_MAX_ALLOC_BYTES to change it\), got \[100000, 1, 2768896\] x 4 bytes \(1\.108e12 bytes\)$/,
  )
})

test('cyclic and deeply nested layer specs are ERR_SPEC, not ERR_INTERNAL', async (t) => {
  const cyclic: Record<string, unknown> = { type: 'sewBlock', connect: 'add', branch: [] }
  ;(cyclic.branch as unknown[]).push(cyclic)
  await rejectsWith(
    t,
    () => sequential([cyclic as unknown as LayerSpec], { timeSteps: 1, inputShape: [4] }),
    'ERR_SPEC',
    /cycle/,
  )
  let deep: Record<string, unknown> = { type: 'relu' }
  for (let i = 0; i < 10_000; i++) deep = { type: 'sewBlock', connect: 'add', branch: [deep] }
  await rejectsWith(
    t,
    () => sequential([deep as unknown as LayerSpec], { timeSteps: 1, inputShape: [4] }),
    'ERR_SPEC',
    /./,
  )
  let nested: Record<string, unknown> = { type: 'relu' }
  for (let i = 0; i < 20; i++) nested = { type: 'sewBlock', connect: 'add', branch: [nested] }
  await rejectsWith(
    t,
    () => sequential([nested as unknown as LayerSpec], { timeSteps: 1, inputShape: [4] }),
    'ERR_SPEC',
    /nested at most 16 deep/,
  )
})

test('a second fit, trainBatch or evaluate on a busy model is refused with ERR_BUSY', async (t) => {
  const model = sequential(tinyLayers(), { timeSteps: 2, inputShape: [1, 2, 2] })
  const data = tinyData()
  const options = { epochs: 2, batchSize: 8, optimizer: sgd({ lr: 0.1 }) }
  const first = model.fit(data, options)
  await rejectsWith(t, () => model.fit(data, options), 'ERR_BUSY', /fit: the model is busy with fit/)
  await rejectsWith(t, () => model.trainBatch(new Float32Array(8), new Uint32Array(2)), 'ERR_BUSY', /trainBatch/)
  await rejectsWith(t, () => model.evaluate(data), 'ERR_BUSY', /evaluate/)
  await rejectsWith(t, () => model.predict(new Float32Array(4), 1), 'ERR_BUSY', /predict/)
  const result = await first
  t.is(result.epochs.length, 2)
  // Inside fit's callbacks the model may be evaluated (the CLI does it every epoch), not trained.
  let inside: number | undefined
  let nestedTrain: string | undefined
  await model.fit(data, {
    ...options,
    epochs: 1,
    onEpochEnd: async () => {
      inside = (await model.evaluate(data)).count
      nestedTrain = await model.trainBatch(new Float32Array(8), new Uint32Array(2)).then(
        () => 'ran',
        (e: DualstreamError) => e.code,
      )
    },
  })
  t.is(inside, 64)
  t.is(nestedTrain, 'ERR_BUSY')
  // Once done, the model takes calls again.
  t.is((await model.evaluate(data)).count, 64)
  await model.dispose()
})

test('batch sizes that would wrap at the N-API boundary are refused', async (t) => {
  const model = sequential(tinyLayers(), { timeSteps: 1, inputShape: [1, 2, 2] })
  await rejectsWith(
    t,
    () => model.predict(new Float32Array(4), 2 ** 32 + 1),
    'ERR_ARG',
    /n: expected the batch size, an integer in \[1, 2\^32\)/,
  )
  t.is((await model.predict(new Float32Array(4), 1)).length, 2)
  await model.dispose()
})

test('optimizer fields that are not finite 32-bit numbers are named', async (t) => {
  await rejectsWith(
    t,
    () => sgd({ lr: 0.1, momentum: Number.NaN }),
    'ERR_ARG',
    /sgd momentum: expected a finite number >= 0.*received NaN/,
  )
  await rejectsWith(
    t,
    () => sgd({ lr: 1e308 }),
    'ERR_ARG',
    /sgd lr: expected a finite number > 0 that fits a 32-bit float/,
  )
})

test('checkpoints: flipped data bytes, bad metadata and corrupt optimizer state are refused naming the file', async (t) => {
  const dir = tmp()
  const model = sequential(tinyLayers(), { timeSteps: 2, inputShape: [1, 2, 2] })
  let saved: Promise<void> | undefined
  const path = join(dir, 'adam.safetensors')
  const fit = await model.fit(tinyData(), {
    epochs: 2,
    batchSize: 8,
    optimizer: { type: 'adam', lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 },
    onEpochEnd: (_, state) => {
      if (!saved) saved = model.save(path, { fit: state })
      return saved
    },
  })
  t.false(fit.stopped)
  const bytes = readFileSync(path)
  // The checksum is stored, and a flipped byte in the tensor data is caught.
  t.regex(readSafetensors(path).metadata.dualstream_data_sha256 ?? '', /^[0-9a-f]{64}$/)
  const flipped = join(dir, 'flipped.safetensors')
  const b = new Uint8Array(bytes)
  b[b.length - 3] ^= 0x10
  writeFileSync(flipped, b)
  await rejectsWith(
    t,
    () => Model.load(flipped),
    'ERR_FORMAT',
    /flipped\.safetensors: at byte offset \d+: the tensor data .* does not match the SHA-256/,
  )
  // A file without a checksum (written by another tool) still loads.
  const { tensors, metadata } = readSafetensors(path)
  const { dualstream_data_sha256: _, ...plain } = metadata
  const other = join(dir, 'other.safetensors')
  writeSafetensors(other, tensors, plain)
  await t.notThrowsAsync(async () => (await Model.load(other)).dispose())
  for (const [key, value, message] of [
    ['spec', 'null', /__metadata__\.spec: expected a model spec object, got null/],
    ['spec', '{"timeSteps":2,"inputShape":[4]}', /__metadata__\.spec\.layers: expected a non-empty array/],
    ['fit', '{}', /__metadata__\.fit\.epoch: expected an integer >= 0, got undefined/],
    ['training', 'null', /__metadata__\.training: expected an object/],
  ] as const) {
    const bad = join(dir, `bad-${key}.safetensors`)
    writeSafetensors(bad, tensors, { ...plain, [key]: value })
    await rejectsWith(t, () => Model.load(bad), 'ERR_FORMAT', new RegExp(`bad-${key}\\.safetensors: ${message.source}`))
  }
  // Adam's second moment is a mean of squares: a negative value is damage, named at load.
  const damaged = join(dir, 'damaged.safetensors')
  writeSafetensors(
    damaged,
    tensors.map((x) => (x.name.endsWith('exp_avg_sq') ? { ...x, data: x.data.map(() => -1) } : x)),
    plain,
  )
  const checkpoint = readCheckpoint(damaged)
  const again = Model.fromCheckpoint(checkpoint)
  await rejectsWith(
    t,
    () =>
      again.fit(tinyData(), {
        epochs: 2,
        batchSize: 8,
        optimizer: { type: 'adam', lr: 0.01, betas: [0.9, 0.999], eps: 1e-8, weightDecay: 0 },
        resume: checkpoint,
      }),
    'ERR_VALUE',
    /damaged\.safetensors: trainer tensor optimizer\/\S*exp_avg_sq: expected values >= 0/,
  )
  await Promise.all([model.dispose(), again.dispose()])
})

test('checkpoints whose spec asks for 2e9 channels or 1e9 steps are refused by load, evaluate, energy and export', async (t) => {
  const dir = tmp()
  const model = sequential(tinyLayers(), { timeSteps: 2, inputShape: [1, 2, 2] })
  const path = join(dir, 'tiny.safetensors')
  await model.save(path)
  await model.dispose()
  const { tensors, metadata } = readSafetensors(path)
  const spec = JSON.parse(metadata.spec ?? '')
  for (const [name, absurd, message] of [
    ['channels', { ...spec, layers: [conv2d(1, 2e9, 1), ...spec.layers] }, /layers\[0\] \(conv2d\).*allocation limit/],
    ['steps', { ...spec, timeSteps: 1e9 }, /inputShape: expected T x inputShape .*allocation limit/],
  ] as const) {
    const bad = join(dir, `${name}.safetensors`)
    writeSafetensors(bad, tensors, { ...metadata, spec: JSON.stringify(absurd) })
    await rejectsWith(t, () => Model.load(bad), 'ERR_SPEC', message)
    const data = dataFolder(8)
    failsCleanly(t, ['evaluate', bad, '--dataset', data], message)
    failsCleanly(t, ['energy', bad, '--dataset', data], message)
    const exported = join(dir, `${name}-export.safetensors`)
    failsCleanly(t, ['export', bad, '--out', exported], message)
    t.false(existsSync(exported))
  }
})

const quick = (data: string, model: string) => ['--dataset', data, '--model', model, '--batch-size', '8', '--quiet']

test('train validates --out, sizes and the resumed checkpoint before creating anything', (t) => {
  const data = dataFolder(32)
  const model = modelJson(tinyLayers())
  failsCleanly(t, ['train', ...quick(data, model), '--out', '/proc/dualstream-x'], /--out: .*pseudo file system/)
  const file = join(tmp(), 'a-file')
  writeFileSync(file, 'x')
  failsCleanly(t, ['train', ...quick(data, model), '--out', file], /--out: .*a-file is a file/)
  failsCleanly(
    t,
    ['train', ...quick(data, model), '--out', join(file, 'run')],
    /--out: cannot create .*a-file is a file/,
  )
  failsCleanly(
    t,
    ['train', ...quick(data, model), '--lr', '1e308'],
    /--lr: expected a number > 0 that fits a 32-bit float/,
  )
  const big = join(tmp(), 'big-run')
  failsCleanly(
    t,
    [
      'train',
      ...quick(data, modelJson([conv2d(1, 4096, 1), flatten(), linear(16384, 2)])),
      '--time-steps',
      '1000000',
      '--out',
      big,
    ],
    /activations|allocation limit/,
  )
  t.false(existsSync(big))
  // --resume with another model's checkpoint: the spec mismatch is named.
  const a = join(tmp(), 'a')
  const b = join(tmp(), 'b')
  t.is(run('train', ...quick(data, model), '--epochs', '2', '--out', a).status, 0)
  const wider = modelJson([flatten(), linear(4, 3), lif(), linear(3, 2)])
  t.is(run('train', ...quick(data, wider), '--epochs', '1', '--out', b).status, 0)
  writeFileSync(
    join(a, 'checkpoints', 'last.safetensors'),
    new Uint8Array(readFileSync(join(b, 'checkpoints', 'last.safetensors'))),
  )
  writeFileSync(
    join(a, 'config.json'),
    JSON.stringify({ ...JSON.parse(readFileSync(join(a, 'config.json'), 'utf8')), epochs: 3 }),
  )
  failsCleanly(
    t,
    ['train', '--resume', a],
    /--resume: .*last\.safetensors holds a model whose spec differs from the run's .*model\.json/,
  )
  writeFileSync(join(a, 'config.json'), 'null')
  failsCleanly(t, ['train', '--resume', a], /config\.json: expected a JSON object of run options, got null/)
})

test('export refuses to overwrite its own run; plot names broken energy.json and metrics rows', (t) => {
  const data = dataFolder(32)
  const dir = join(tmp(), 'run')
  t.is(run('train', ...quick(data, modelJson(tinyLayers())), '--epochs', '1', '--out', dir).status, 0)
  const last = join(dir, 'checkpoints', 'last.safetensors')
  const before = readFileSync(last)
  failsCleanly(t, ['export', dir, '--out', last], /export --out: .* would overwrite/)
  failsCleanly(t, ['export', last, '--out', last], /export --out: .* would overwrite the checkpoint being exported/)
  failsCleanly(t, ['export', dir, '--out', ''], /export --out: expected a file path, got ""/)
  t.deepEqual(readFileSync(last), before)
  writeFileSync(join(dir, 'energy.json'), '{}')
  failsCleanly(t, ['plot', dir], /energy\.json: energy report: expected an object \{ layers/)
  writeFileSync(join(dir, 'energy.json'), JSON.stringify({ layers: [{ name: 'a', ac: 1, mac: 2 }] }))
  t.is(run('plot', dir).status, 0)
  const metrics = join(dir, 'metrics.jsonl')
  const row = JSON.parse(readFileSync(metrics, 'utf8').trim().split('\n')[0])
  writeFileSync(metrics, `${JSON.stringify({ ...row, trainLoss: 'low' })}\n`)
  failsCleanly(t, ['plot', dir], /metrics\.jsonl: row 1: trainLoss: expected a number, got "low"/)
  writeFileSync(metrics, `${JSON.stringify({ ...row, firingRates: [{ name: 3 }] })}\n`)
  failsCleanly(t, ['plot', dir], /metrics\.jsonl: row 1: firingRates\[0\]: expected \{ name: string, rate: number \}/)
})

/** A DVS128 Gesture folder of one trial whose `.aedat` and labels CSV are given. */
function gestureFolder(aedat: Uint8Array, labels: Uint8Array): string {
  const dir = tmp()
  writeFileSync(join(dir, 'user01_natural.aedat'), aedat)
  writeFileSync(join(dir, 'user01_natural_labels.csv'), labels)
  writeFileSync(join(dir, 'trials_to_train.txt'), 'user01_natural.aedat\n')
  return dir
}

const gestureLabels = 'class,startTime_usec,endTime_usec\n1,0,100\n2,100,200\n3,200,300\n'
/** The bytes of `text`, one per character (character codes below 256). */
const latin1 = (text: string) => Uint8Array.from(text, (c) => c.charCodeAt(0))
// An AEDAT 3.1 header, then two bytes of a packet header (which needs 28): a format error.
const brokenAedat = latin1('#!AER-DAT3.1\r\n#!END-HEADER\r\n\x01\x00')

test('a DvsGesture labels CSV that is not UTF-8 names the file and the row', async (t) => {
  const labels = latin1('class,startTime_usec,endTime_usec\n1,0,100\n2,\xff\xfe,300\n')
  const dir = gestureFolder(brokenAedat, labels)
  const message = /user01_natural_labels\.csv.*row 3.*not UTF-8/
  await rejectsWith(t, () => readGestureLabels(join(dir, 'user01_natural_labels.csv')), 'ERR_FORMAT', message)
  const err = t.throws(() => new DvsGesture(dir), { instanceOf: DualstreamError })
  t.is(err?.code, 'ERR_FORMAT')
  t.regex(err?.message ?? '', message)
})

test("a broken DvsGesture trial is parsed once: its other windows give the first window's error", async (t) => {
  const dir = gestureFolder(brokenAedat, latin1(gestureLabels))
  const gestures = new DvsGesture(dir)
  t.is(gestures.length, 3)
  const first = await t.throwsAsync(() => gestures.get(0), { instanceOf: DualstreamError })
  t.is(first?.code, 'ERR_FORMAT')
  t.regex(first?.message ?? '', /user01_natural\.aedat.*byte 28/)
  // With the file gone, a second parse would fail to open it: the same format error for the
  // other windows of the trial shows the failure was kept.
  unlinkSync(join(dir, 'user01_natural.aedat'))
  for (const index of [1, 2]) {
    const again = await t.throwsAsync(() => gestures.get(index), { instanceOf: DualstreamError })
    t.is(again?.code, first?.code)
    t.is(again?.message, first?.message)
  }
})

test('info and data folders: absurd sizes and bad files are named, large folders load', (t) => {
  failsCleanly(
    t,
    ['info', modelJson([flatten(), linear(4, 1e12)]), '--input-shape', '1,2,2'],
    /linear.*allocation limit/,
  )
  failsCleanly(t, ['info', 'snn', '--input-shape', '1,1000000,1000000'], /inputShape|allocation limit|activations/)
  const model = modelJson(tinyLayers())
  const abc = dataFolder(16, 'abc')
  failsCleanly(t, ['train', ...quick(abc, model)], /train\.safetensors: __metadata__\.classes is "abc"/)
  const empty = tmp()
  for (const split of ['train', 'test'])
    writeSafetensors(join(empty, `${split}.safetensors`), [
      { name: 'images', shape: [0, 1, 2, 2], data: new Float32Array(0) },
      { name: 'labels', shape: [0], data: new Float32Array(0) },
    ])
  failsCleanly(t, ['train', ...quick(empty, model)], /train\.safetensors: images holds no sample/)
  const nan = dataFolder(16)
  const { tensors } = readSafetensors(join(nan, 'train.safetensors'))
  tensors[0].data[13] = Number.NaN
  writeSafetensors(join(nan, 'train.safetensors'), tensors)
  failsCleanly(t, ['train', ...quick(nan, model)], /train\.safetensors: images holds NaN at flat index 13 \(sample 3\)/)
  // 200,000 labels: the class count is found without spreading them into arguments.
  const large = dataFolder(200_000)
  const r = run(
    'train',
    ...quick(large, model),
    '--limit',
    '16',
    '--test-limit',
    '16',
    '--epochs',
    '1',
    '--out',
    join(tmp(), 'r'),
  )
  t.is(r.status, 0, r.stderr)
})
