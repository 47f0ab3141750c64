import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { conv2d, flatten, lif, linear, sequential, sgd } from '../ts'
import {
  DataLoader,
  type EventSample,
  type Events,
  encodeImage,
  encoders,
  FrameCache,
  FramesDataset,
  type IndexedDataset,
  integrateEvents,
  NFashionMnist,
  syntheticEvents,
  TensorDataset,
  transforms,
} from '../ts/data'
import { DualstreamError } from '../ts/errors'

function stream(width: number, height: number, ev: [number, number, number, number][]): Events {
  return {
    width,
    height,
    t: Float64Array.from(ev, (e) => e[0]),
    x: Uint16Array.from(ev, (e) => e[1]),
    y: Uint16Array.from(ev, (e) => e[2]),
    p: Uint8Array.from(ev, (e) => e[3]),
  }
}

// 7 events on a 3 x 2 sensor; by number with T = 3 the frames take events [0,2), [2,4), [4,7).
const SEVEN = stream(3, 2, [
  [0, 0, 0, 1],
  [5, 0, 0, 1],
  [6, 2, 1, 0],
  [9, 1, 0, 1],
  [10, 1, 1, 0],
  [11, 1, 1, 0],
  [50, 2, 0, 1],
])
// Written by hand: one row per frame, the OFF then the ON channel, each as its two rows (y) of
// three counts (x); the data is laid out [T][channel][y][x].
const SEVEN_FRAMES = [
  ['000 000', '200 000'],
  ['000 001', '010 000'],
  ['000 020', '001 000'],
].flatMap((frame) => frame.flatMap((channel) => Array.from(channel.replaceAll(' ', ''), Number)))

test('integrateEvents: split by number matches frames computed by hand; BigInt timestamps work', async (t) => {
  const f = await integrateEvents(SEVEN, { split: 'number', frames: 3 })
  t.deepEqual(f.shape, [3, 2, 2, 3])
  t.deepEqual(Array.from(f.data), SEVEN_FRAMES)
  const big = { ...SEVEN, t: BigInt64Array.from(SEVEN.t as Float64Array, (v) => BigInt(v)) }
  t.deepEqual(Array.from((await integrateEvents(big, { split: 'number', frames: 3 })).data), SEVEN_FRAMES)
  // By time: span 40, T = 2 -> dt = 20: window 0 holds t = 0, 10; frame 1 the ON events at 30, 40.
  const four = stream(3, 2, [
    [0, 0, 0, 1],
    [10, 1, 0, 0],
    [30, 2, 1, 1],
    [40, 0, 1, 1],
  ])
  const byTime = await integrateEvents(four, { split: 'time', frames: 2 })
  t.deepEqual(Array.from(byTime.data), [0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1])
  // Downscale 2 sums 2 x 2 blocks: a 2 x 1 frame (width rounds up).
  const down = await integrateEvents(SEVEN, { split: 'number', frames: 1, downscale: 2 })
  t.deepEqual(down.shape, [1, 2, 1, 2])
  t.deepEqual(Array.from(down.data), [2, 1, 3, 1])
})

test('integrateEvents: an empty stream, an empty time window, events off the sensor and bad specs are clear errors', async (t) => {
  let e = await t.throwsAsync(integrateEvents(stream(4, 4, []), { split: 'number', frames: 2 }), {
    instanceOf: DualstreamError,
  })
  t.is(e!.code, 'ERR_VALUE')
  t.regex(e!.message, /empty stream/)
  e = await t.throwsAsync(
    integrateEvents(
      stream(4, 4, [
        [0, 0, 0, 1],
        [1, 0, 0, 1],
        [100, 0, 0, 1],
      ]),
      { split: 'time', frames: 4 },
    ),
  )
  t.regex(e!.message, /window 1 of 4/)
  e = await t.throwsAsync(
    integrateEvents(
      stream(4, 4, [
        [0, 1, 1, 1],
        [1, 1, 9, 0],
      ]),
      { split: 'number', frames: 1 },
    ),
  )
  t.regex(e!.message, /event 1.*y = 9/)
  e = await t.throwsAsync(integrateEvents(SEVEN, { split: 'sideways', frames: 2 } as never))
  t.is(e!.code, 'ERR_ARG')
  e = await t.throwsAsync(integrateEvents({ ...SEVEN, x: new Uint16Array(2) }, { split: 'number', frames: 2 }))
  t.regex(e!.message, /same length/)
  e = await t.throwsAsync(
    integrateEvents({ ...SEVEN, t: Float64Array.from([0.5, 1, 2, 3, 4, 5, 6]) }, { split: 'number', frames: 2 }),
  )
  t.regex(e!.message, /t\[0\]/)
})

test('FrameCache: builds once, hits after, rebuilds a damaged file, misses when the source changes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dualstream-frames-'))
  const source = join(dir, 'rec.bin')
  writeFileSync(source, 'recording v1')
  const cache = new FrameCache(join(dir, 'cache'))
  const spec = { split: 'number', frames: 3 } as const
  let loads = 0
  const load = () => {
    loads++
    return SEVEN
  }
  const a = await cache.get(source, spec, load)
  t.is(a.outcome, 'built')
  t.deepEqual(Array.from(a.frames.data), SEVEN_FRAMES)
  const b = await cache.get(source, spec, load)
  t.is(b.outcome, 'hit')
  t.deepEqual(Array.from(b.frames.data), SEVEN_FRAMES)
  t.is(loads, 1)
  const files = readdirSync(join(dir, 'cache'))
  t.is(files.length, 1, 'one file, no temporary left behind')
  const file = join(dir, 'cache', files[0])
  t.is(readFileSync(file).subarray(0, 8).toString('latin1'), 'DSFRAMES')
  // Truncated: rebuilt (with the reason), not trusted and not a crash.
  writeFileSync(file, new Uint8Array(readFileSync(file).subarray(0, 100)))
  const c = await cache.get(source, spec, load)
  t.is(c.outcome, 'rebuilt')
  t.regex(c.reason ?? '', /ERR_FORMAT/)
  t.deepEqual(Array.from(c.frames.data), SEVEN_FRAMES)
  // Other parameters and an edited source are other keys.
  t.is((await cache.get(source, { split: 'number', frames: 2 }, load)).outcome, 'built')
  t.is((await cache.get(source, spec, load, 't=0..10')).outcome, 'built')
  writeFileSync(source, 'recording v2, longer')
  t.is((await cache.get(source, spec, load)).outcome, 'built')
  t.is(loads, 5)
  // A loader failure passes through.
  const err = await t.throwsAsync(cache.get(source, { split: 'time', frames: 2 }, () => stream(2, 2, [])))
  t.regex(err!.message, /empty stream/)
})

test('encoders: direct repeats, latency fires once earlier for brighter pixels, Poisson is seeded', async (t) => {
  const img = Float32Array.from([1, 0.5, 0.2, 0])
  const d = await encodeImage(img, [1, 2, 2], encoders.direct(2))
  t.deepEqual(d.shape, [2, 1, 2, 2])
  t.deepEqual(
    Array.from(d.data),
    [...img, ...img].map((v) => Math.fround(v)),
  )
  const l = await encodeImage(img, [1, 2, 2], encoders.latency(5))
  // Steps: round((1 - v) * 4) = 0, 2, round(3.2) = 3; v = 0 never.
  const first = [0, 1, 2, 3].map((i) => [0, 1, 2, 3, 4].findIndex((s) => l.data[s * 4 + i] === 1))
  t.deepEqual(first, [0, 2, 3, -1])
  const p1 = await encodeImage(img, [1, 2, 2], encoders.poisson(64), 3)
  const p2 = await encodeImage(img, [1, 2, 2], encoders.poisson(64), 3)
  t.deepEqual(p1.data, p2.data)
  const rate = (i: number) => Array.from({ length: 64 }, (_, s) => p1.data[s * 4 + i]).reduce((a, b) => a + b, 0) / 64
  t.is(rate(0), 1)
  t.is(rate(3), 0)
  t.true(rate(1) > 0.25 && rate(1) < 0.75)
})

test('syntheticEvents: a blank image is silent; a bright square gives both polarities on a 34 x 34 sensor', async (t) => {
  const blank = await syntheticEvents(new Float32Array(28 * 28), 28, 28)
  t.is(blank.t.length, 0)
  t.is(blank.width, 34)
  const square = new Float32Array(28 * 28)
  for (let y = 10; y < 18; y++) for (let x = 10; x < 18; x++) square[y * 28 + x] = 1
  const ev = await syntheticEvents(square, 28, 28)
  const on = Array.from(ev.p as Uint8Array).filter((p) => p === 1).length
  t.true(on > 0 && on < ev.t.length, `${on} ON of ${ev.t.length}`)
  const ts = ev.t as Float64Array
  t.true(ts.every((v, i) => i === 0 || ts[i - 1] <= v) && ts[ts.length - 1] <= 300_000)
  // A higher threshold gives fewer events.
  const fewer = await syntheticEvents(square, 28, 28, { threshold: 0.5 })
  t.true(fewer.t.length < ev.t.length * 0.6, `${fewer.t.length} vs ${ev.t.length}`)
  await t.throwsAsync(syntheticEvents(square, 28, 27), { message: /28 x 27/ })
  await t.throwsAsync(syntheticEvents(square, 28, 28, { threshold: -1 }), { message: /threshold/ })
})

/** A small event dataset: sample i has i + 3 events; it records every get(). */
class CountingEvents implements IndexedDataset {
  calls: number[] = []
  constructor(readonly length: number) {}
  get(i: number): EventSample {
    this.calls.push(i)
    const ev: [number, number, number, number][] = Array.from({ length: i + 3 }, (_, k) => [
      k * 10,
      (i + k) % 4,
      k % 4,
      k % 2,
    ])
    return { events: stream(4, 4, ev), label: i % 3 }
  }
}

test('DataLoader: every sample once per epoch, seeded order and augmentation, time-major batches equal per-sample frames', async (t) => {
  const ds = new CountingEvents(10)
  const pipeline = { frames: { split: 'number', frames: 2 } as const }
  const loader = new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 9, pipeline })
  const seen: number[] = []
  for await (const b of loader.epoch(0)) {
    const [T, N] = b.shape
    t.deepEqual(b.shape.slice(2), [2, 4, 4])
    for (let j = 0; j < N; j++) {
      const i = b.indices[j]
      seen.push(i)
      t.is(b.y[j], i % 3)
      const alone = await integrateEvents(ds.get(i).events, pipeline.frames)
      const step = 32
      for (let s = 0; s < T; s++)
        t.deepEqual(
          b.x.subarray((s * N + j) * step, (s * N + j + 1) * step),
          alone.data.subarray(s * step, (s + 1) * step),
        )
    }
  }
  t.deepEqual(
    [...seen].sort((a, b) => a - b),
    [...Array(10).keys()],
  )
  const again: number[] = []
  for await (const b of new DataLoader(ds, { batchSize: 4, shuffle: true, seed: 9, pipeline }).epoch(0))
    again.push(...b.indices)
  t.deepEqual(again, seen, 'same seed and epoch, same order')
  const other: number[] = []
  for await (const b of loader.epoch(1)) other.push(...b.indices)
  t.notDeepEqual(other, seen, 'another epoch, another order')
  // Augmented: same seed -> same batch, and flips actually happen across epochs.
  const aug = { ...pipeline, transforms: [transforms.randomCrop(4, 1), transforms.horizontalFlip(0.5)] }
  const run = async (seed: number, epoch: number) => {
    const out: number[] = []
    for await (const b of new DataLoader(ds, { batchSize: 5, seed, pipeline: aug }).epoch(epoch)) out.push(...b.x)
    return out
  }
  t.deepEqual(await run(1, 0), await run(1, 0))
  t.notDeepEqual(await run(1, 0), await run(1, 1))
})

test('DataLoader: the prefetch queue is bounded, and a bad sample is an error naming it', async (t) => {
  const ds = new CountingEvents(40)
  const loader = new DataLoader(ds, { batchSize: 4, prefetch: 2, pipeline: { frames: { split: 'number', frames: 1 } } })
  const it = loader.epoch(0)
  await it.next()
  // Batch 0 was consumed; batches 1 and 2 are being prepared; nothing beyond.
  t.is(ds.calls.length, 12)
  await it.return(undefined)
  const bad: IndexedDataset = {
    length: 3,
    get: (i) =>
      i === 2 ? { events: stream(2, 2, [[0, 5, 0, 1]]), label: 0 } : { events: stream(2, 2, [[0, 1, 1, 1]]), label: 1 },
  }
  const e = await t.throwsAsync(async () => {
    for await (const _ of new DataLoader(bad, {
      batchSize: 3,
      pipeline: { frames: { split: 'number', frames: 1 } },
    }).epoch(0))
      void _
  })
  t.regex(e!.message, /batch sample 2.*x = 5/)
  t.throws(() => new DataLoader(ds, { batchSize: 0, pipeline: {} }), { message: /batchSize/ })
  t.throws(() => new DataLoader(ds, { batchSize: 2, pipeline: { synthetic: {} } }), { message: /frames spec/ })
})

test('NFashionMnist through FramesDataset and the loader: 34 x 34 frames, labels kept, temporal delete applied', async (t) => {
  const images = new Float32Array(6 * 28 * 28)
  for (let i = 0; i < 6; i++)
    for (let y = 6; y < 22; y++) for (let x = 4 + i; x < 20 + i; x++) images[i * 784 + y * 28 + x] = 0.3 + 0.1 * i
  const fm = new TensorDataset({
    name: 'tiny',
    images,
    labels: Uint8Array.from([0, 1, 2, 3, 4, 5]),
    sampleShape: [1, 28, 28],
    numClasses: 10,
  })
  const nf = new NFashionMnist(fm)
  t.is(nf.width, 34)
  const s = await nf.get(4)
  t.is(s.label, 4)
  // get() hands the engine a view into the middle of the image buffer: same events as a copy.
  const copy = await syntheticEvents(images.slice(4 * 784, 5 * 784), 28, 28)
  t.deepEqual(s.events.x, copy.x)
  t.deepEqual(s.events.t, copy.t)
  t.notDeepEqual((await nf.get(0)).events.x, copy.x)
  const frames = await FramesDataset.from(nf, { split: 'number', frames: 4 }, { batchSize: 4 })
  t.deepEqual(frames.sampleShape, [4, 2, 34, 34])
  const direct = await integrateEvents(s.events, { split: 'number', frames: 4 })
  t.deepEqual(frames.get(4).frames, direct.data)
  t.is(frames.get(4).label, 4)
  const loader = new DataLoader(frames, { batchSize: 3, pipeline: { transforms: [transforms.temporalDelete(3)] } })
  const shapes: number[][] = []
  for await (const b of loader.epoch(0)) shapes.push(b.shape)
  t.deepEqual(shapes, [
    [3, 3, 2, 34, 34],
    [3, 3, 2, 34, 34],
  ])
})

test('FramesDataset is a LabelledData for sequence models: time-major batches as the loader makes them, fit and evaluate', async (t) => {
  // Eight 2-frame samples of 1 x 2 x 2 counts: sample i holds i + 10 * frame + pixel.
  const counts = Uint8Array.from(
    { length: 8 * 8 },
    (_, k) => Math.floor(k / 8) + 10 * Math.floor((k % 8) / 4) + (k % 4),
  )
  const labels = Uint32Array.from({ length: 8 }, (_, i) => i % 2)
  const frames = new FramesDataset(counts, labels, [2, 1, 2, 2])
  t.deepEqual(frames.sampleShape, [2, 1, 2, 2])
  t.is(frames.numClasses, 2)
  t.true(frames.timeMajor)
  const loader = new DataLoader(frames, { batchSize: 3, shuffle: true, seed: 4, pipeline: {} })
  const fromLoader: { x: number[]; y: number[] }[] = []
  for await (const b of loader.epoch(1)) fromLoader.push({ x: Array.from(b.x), y: Array.from(b.y) })
  const fromBatches = [...frames.batches(3, { shuffle: true, seed: 4, epoch: 1 })].map((b) => ({
    x: Array.from(b.x),
    y: Array.from(b.y),
  }))
  t.deepEqual(fromBatches, fromLoader)
  // Time-major by hand: the first batch's first frame holds its samples' frame-0 counts, in batch order.
  const first = [...frames.batches(2)][0]
  t.deepEqual(Array.from(first.x), [0, 1, 2, 3, 1, 2, 3, 4, 10, 11, 12, 13, 11, 12, 13, 14])
  const sub = frames.sample(5, 1)
  t.is(sub.length, 5)
  t.is(sub.numClasses, 2)

  const model = sequential([conv2d(1, 2, 1), lif(), flatten(), linear(8, 2)], {
    timeSteps: 2,
    encoding: 'sequence',
    seed: 0,
  })
  const fit = await model.fit(frames, { epochs: 1, batchSize: 4, optimizer: sgd({ lr: 0.01 }) })
  t.true(Number.isFinite(fit.epochs[0].loss))
  const ev = await model.evaluate(frames, { batchSize: 8 })
  t.is(ev.count, 8)
  // A static-image data set cannot feed a sequence model: its batches are not time-major.
  const images = new TensorDataset({
    name: 'static',
    images: new Float32Array(8 * 8),
    labels,
    sampleShape: [2, 1, 2, 2],
    numClasses: 2,
  })
  await t.throwsAsync(model.evaluate(images), { message: /time-major \[T, N, \.\.\.\] batches for a sequence model/ })
  await model.dispose()
})
