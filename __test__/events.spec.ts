import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { Cifar10, Cifar10Dvs, DvsGesture, type EventStream, Idx, NMnist } from '../ts'
import * as files from '../ts/data/events'
import { DualstreamError } from '../ts/errors'

// Optional real recordings in a shared/data folder next to the checkout's folder; never copied
// into the repository. The tests skip when it is absent.
const SAMPLES = join(__dirname, '..', '..', 'shared', 'data')
const haveSamples = existsSync(join(SAMPLES, 'nmnist-sample.bin'))
if (!haveSamples) console.log(`SKIPPED real-sample tests: ${SAMPLES} is absent`)
const sampleTest = haveSamples ? test : test.skip

const tempDirs: string[] = []
function tmp(): string {
  const dir = mkdtempSync(join(tmpdir(), 'dualstream-events-'))
  tempDirs.push(dir)
  return dir
}
test.after.always(() => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true })
})

/** Deterministic events in time order (a small LCG, no dependency). */
function makeEvents(width: number, height: number, n: number, seed: number): EventStream {
  let s = seed >>> 0
  const next = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s
  }
  const e: EventStream = {
    width,
    height,
    t: new Float64Array(n),
    x: new Uint16Array(n),
    y: new Uint16Array(n),
    p: new Uint8Array(n),
  }
  let t = 1000
  for (let i = 0; i < n; i++) {
    t += next() % 50
    e.t[i] = t
    e.x[i] = next() % width
    e.y[i] = next() % height
    e.p[i] = next() % 2
  }
  return e
}

sampleTest('N-MNIST sample: 4,325 events in 34x34, last t 311,175', async (t) => {
  const path = join(SAMPLES, 'nmnist-sample.bin')
  t.is(await files.detectEventFormat(path), 'nmnist')
  const e = await files.readEvents(path)
  t.is(e.t.length, 4325)
  t.is(e.t[e.t.length - 1], 311_175)
  t.deepEqual([e.width, e.height], [34, 34])
  t.true(e.x.every((v) => v < 34) && e.y.every((v) => v < 34))
  t.true(e.p.every((v) => v === 0 || v === 1))
})

sampleTest('AEDAT 4 sample: 111,954 events in 59 LZ4 packets, 320x240', async (t) => {
  const file = await files.readEventFile(join(SAMPLES, 'dvxplorer-sample.aedat4'))
  t.is(file.format, 'aedat4')
  t.is(file.compression, 'lz4')
  t.is(file.eventPackets, 59)
  t.is(file.events.t.length, 111_954)
  t.deepEqual([file.events.width, file.events.height], [320, 240])
})

sampleTest('AEDAT 2 header-only sample: version 2, no events, creation time', async (t) => {
  const file = await files.readEventFile(join(SAMPLES, 'davis346-header-only.aedat'))
  t.is(file.format, 'aedat2')
  t.is(file.events.t.length, 0)
  t.is(file.creationTimeMs, 1_695_355_587_880)
})

sampleTest('DVS Gesture labels sample: 12 windows, classes 1..11, class 8 twice', async (t) => {
  const windows = await files.readGestureLabels(join(SAMPLES, 'dvsgesture-user01_natural_labels.csv'))
  t.deepEqual(
    windows.map((w) => w.class),
    [1, 2, 3, 5, 4, 6, 7, 8, 8, 9, 10, 11],
  )
  t.deepEqual(windows[0], { class: 1, label: 0, start: 53_036_986, end: 59_508_469, row: 2 })
})

for (const [format, ext, width, height] of [
  ['nmnist', '.bin', 34, 34],
  ['aedat2', '.aedat', 128, 128],
  ['aedat3', '.aedat', 128, 128],
  ['aedat4', '.aedat4', 346, 260],
] as const) {
  test(`${format}: writeEvents -> readEvents round trip`, async (t) => {
    const dir = tmp()
    const path = join(dir, `r${ext}`)
    const events = makeEvents(width, height, 3000, width)
    await files.writeEvents(path, events, { format, creationTimeMs: 1_600_000_000_000, eventsPerPacket: 1000 })
    t.is(await files.detectEventFormat(path), format)
    const back = await files.readEventFile(path, format === 'aedat3' ? { width, height } : {})
    t.deepEqual(back.events, events)
    if (format === 'aedat2') t.is(back.creationTimeMs, 1_600_000_000_000)
    if (format === 'aedat4') t.is(back.eventPackets, 3)
    t.deepEqual(readdirSync(dir), [`r${ext}`], 'no temp file left')
  })
}

test('a truncated file fails with ERR_FORMAT naming the file and byte offset', async (t) => {
  const dir = tmp()
  const path = join(dir, 'cut.bin')
  await files.writeEvents(path, makeEvents(34, 34, 10, 3))
  writeFileSync(path, new Uint8Array(readFileSync(path).subarray(0, 23)))
  const err = await t.throwsAsync(files.readEvents(path), { instanceOf: DualstreamError })
  t.is(err.code, 'ERR_FORMAT')
  t.is(err.message, `${path}, byte 20: expected a 5-byte event, but the file ends after 3 bytes of it`)
})

test('bad arguments and unknown formats are clear errors', async (t) => {
  const dir = tmp()
  const path = join(dir, 'x.dat')
  writeFileSync(path, 'hello')
  const unknown = await t.throwsAsync(files.readEvents(path), { instanceOf: DualstreamError })
  t.is(unknown.code, 'ERR_FORMAT')
  t.regex(unknown.message, /byte 0: expected an AEDAT version line/)
  const events = makeEvents(34, 34, 5, 1)
  const ambiguous = await t.throwsAsync(files.writeEvents(join(dir, 'y.aedat'), events), {
    instanceOf: DualstreamError,
  })
  t.is(ambiguous.code, 'ERR_ARG')
  const badArray = await t.throwsAsync(
    files.writeEvents(join(dir, 'z.bin'), { ...events, x: [1] as unknown as Uint16Array }),
  )
  t.regex(badArray.message, /writeEvents\(events\)\.x: expected a Uint16Array/)
  const outside = await t.throwsAsync(files.writeEvents(join(dir, 'o.bin'), { ...events, width: 2 }))
  t.is((outside as DualstreamError).code, 'ERR_VALUE')
  t.deepEqual(readdirSync(dir).sort(), ['x.dat'], 'failed writes leave nothing')
  const missing = await t.throwsAsync(files.readEvents(join(dir, 'none.bin')), { instanceOf: DualstreamError })
  t.is(missing.code, 'ERR_IO')
})

test('CIFAR batch and IDX round trips', async (t) => {
  const dir = tmp()
  const pixels = Uint8Array.from({ length: 2 * 3072 }, (_, i) => (i * 7) % 256)
  await files.writeCifarBatch(join(dir, 'b.bin'), 'cifar100', {
    pixels,
    labels: Uint8Array.of(99, 3),
    coarseLabels: Uint8Array.of(19, 0),
  })
  const batch = await files.readCifarBatch(join(dir, 'b.bin'), 'cifar100')
  t.is(batch.count, 2)
  t.deepEqual([...batch.labels, ...batch.coarseLabels], [99, 3, 19, 0])
  t.deepEqual(batch.pixels, pixels)
  for (const data of [
    Uint8Array.of(1, 2, 3, 4, 5, 6),
    Int16Array.of(-300, 2, 3, 4, 5, 32767),
    Float64Array.of(0.5, -1, 2, 3, 4, 5),
  ]) {
    await files.writeIdx(join(dir, 'a.idx'), { dims: [2, 3], data })
    const back = await files.readIdx(join(dir, 'a.idx'))
    t.deepEqual(back, { dims: [2, 3], data })
  }
})

test('dataset folders: N-MNIST, CIFAR10-DVS, DVS Gesture, CIFAR-10, IDX', async (t) => {
  const root = tmp()
  for (const split of ['Train', 'Test']) {
    for (let d = 0; d < 10; d++) {
      mkdirSync(join(root, 'nmnist', split, String(d)), { recursive: true })
      await files.writeEvents(join(root, 'nmnist', split, String(d), `0000${d}.bin`), makeEvents(34, 34, 20, d))
    }
  }
  const nm = new NMnist(join(root, 'nmnist'), { split: 'test' })
  t.is(nm.length, 10)
  t.deepEqual([...nm.labels], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  const sample = await nm.get(7)
  t.is(sample.label, 7)
  t.deepEqual(sample.events, makeEvents(34, 34, 20, 7))
  const badIndex = await t.throwsAsync(nm.get(10), { instanceOf: DualstreamError })
  t.is(badIndex.code, 'ERR_ARG')

  const classes = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck']
  for (const c of classes) {
    mkdirSync(join(root, 'c10dvs', c), { recursive: true })
    for (let i = 0; i < 10; i++) {
      await files.writeEvents(join(root, 'c10dvs', c, `cifar10_${c}_${i}.aedat`), makeEvents(128, 128, 5, i), {
        format: 'aedat2',
      })
    }
  }
  const c10dvs = new Cifar10Dvs(join(root, 'c10dvs'))
  t.is(c10dvs.length, 90)
  t.is(new Cifar10Dvs(join(root, 'c10dvs'), { split: 'test' }).length, 10)
  t.deepEqual(c10dvs.classNames, classes)

  const g = join(root, 'DvsGesture')
  mkdirSync(g)
  const rec = makeEvents(128, 128, 1000, 5)
  await files.writeEvents(join(g, 'user01_lab.aedat'), rec, { format: 'aedat3' })
  writeFileSync(join(g, 'user01_lab_labels.csv'), `class,startTime_usec,endTime_usec\n4,${rec.t[100]},${rec.t[200]}\n`)
  writeFileSync(join(g, 'trials_to_train.txt'), 'user01_lab.aedat\n')
  const gesture = new DvsGesture(root)
  t.is(gesture.length, 1)
  const window = await gesture.get(0)
  t.is(window.label, 3)
  t.is(window.events.t[0], rec.t[100])
  t.is(window.events.t.length, rec.t.filter((v) => v >= rec.t[100] && v < rec.t[200]).length)
  const noTest = t.throws(() => new DvsGesture(root, { split: 'test' }), { instanceOf: DualstreamError })
  t.is(noTest.code, 'ERR_IO')
  t.regex(noTest.message, /trials_to_test\.txt.*expected the DVS128 Gesture folder/)

  const cifarDir = join(root, 'cifar-10-batches-bin')
  mkdirSync(cifarDir)
  const img = Uint8Array.from({ length: 3072 }, (_, i) => i % 200)
  await files.writeCifarBatch(join(cifarDir, 'test_batch.bin'), 'cifar10', { pixels: img, labels: Uint8Array.of(6) })
  const cifar = new Cifar10(root, { split: 'test' })
  t.deepEqual([cifar.length, cifar.labels[0], cifar.classNames[6]], [1, 6, 'frog'])
  t.deepEqual(cifar.shape, [3, 32, 32])
  t.deepEqual(
    (await cifar.get(0)).image,
    Float32Array.from(img, (v) => v / 255),
  )

  await files.writeIdx(join(root, 't10k-images-idx3-ubyte'), {
    dims: [2, 2, 2],
    data: Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8),
  })
  await files.writeIdx(join(root, 't10k-labels-idx1-ubyte'), { dims: [2], data: Uint8Array.of(3, 9) })
  const idx = new Idx(root, { split: 'test' })
  t.deepEqual(await idx.get(1), { image: Float32Array.from([5, 6, 7, 8], (v) => v / 255), shape: idx.shape, label: 9 })
})
