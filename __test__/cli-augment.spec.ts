import test from 'ava'
import { AFFINE, augmentTrainSet, CROP_PADDING, ELASTIC, ERASE } from '../ts/cli/augment'
import { DSNN_WIDTH } from '../ts/cli/common'
import { resolveConfig } from '../ts/cli/train'
import { FramesDataset, LoaderData, TensorDataset, transforms } from '../ts/data'
import type { DataBatch, LabelledData } from '../ts/model'

const H = 6
const W = 7

/** Samples whose pixels are all distinct and non-zero, so a crop's offset and a flip can be read back. */
function images(n: number): TensorDataset {
  const data = new Float32Array(n * H * W)
  for (let i = 0; i < data.length; i++) data[i] = 1 + i
  return new TensorDataset({
    name: 'distinct',
    images: data,
    labels: Uint8Array.from({ length: n }, (_, i) => i % 3),
    sampleShape: [1, H, W],
    numClasses: 3,
  })
}

async function collect(data: LabelledData, epoch: number): Promise<DataBatch[]> {
  const out: DataBatch[] = []
  for await (const b of data.batches(4, { shuffle: false, seed: 9, epoch })) out.push({ ...b, x: b.x.slice() })
  return out
}

/** The shift (dy, dx) and mirroring that turn `source` into `seen` (zeros where the window
 * leaves the image), or undefined when no crop of the padded image with that flip gives it. */
function explain(source: Float32Array, seen: Float32Array): { dy: number; dx: number; flipped: boolean }[] {
  const found: { dy: number; dx: number; flipped: boolean }[] = []
  for (const flipped of [false, true]) {
    for (let dy = -CROP_PADDING; dy <= CROP_PADDING; dy++) {
      for (let dx = -CROP_PADDING; dx <= CROP_PADDING; dx++) {
        let same = true
        for (let y = 0; y < H && same; y++) {
          for (let x = 0; x < W && same; x++) {
            const sy = y + dy
            const cx = x + dx
            const sx = flipped ? W - 1 - cx : cx
            const expected = sy >= 0 && sy < H && cx >= 0 && cx < W ? source[sy * W + sx] : 0
            same = seen[y * W + x] === expected
          }
        }
        if (same) found.push({ dy, dx, flipped })
      }
    }
  }
  return found
}

test('without --model, fashion-mnist and mnist train their recipe, each value overridable; --width for dsnn, dsnn3 and snn', (t) => {
  t.like(resolveConfig({}), {
    dataset: 'fashion-mnist',
    model: 'dsnn3',
    'time-steps': 2,
    augment: 'flip',
    width: DSNN_WIDTH,
    epochs: 10,
    'batch-size': 128,
    optimizer: 'adamw',
    lr: 4e-3,
    'weight-decay': 0.1,
    'label-smoothing': 0.1,
    ema: 0.998,
    schedule: 'cosine',
  })
  t.like(resolveConfig({ dataset: 'mnist' }), {
    model: 'dsnn3',
    'time-steps': 2,
    augment: 'affine',
    epochs: 30,
    'batch-size': 64,
    optimizer: 'adamw',
    lr: 2e-3,
    'weight-decay': 0.1,
    'label-smoothing': 0.1,
    ema: 0.995,
  })
  // A flag, or a config file's key, wins over the recipe; naming the recipe's model keeps the rest.
  t.like(resolveConfig({ epochs: '3', ema: '0', 'time-steps': '4' }), {
    model: 'dsnn3',
    epochs: 3,
    ema: 0,
    'time-steps': 4,
  })
  t.like(resolveConfig({}, { path: 'c.json', values: { augment: 'none' } }), { augment: 'none', epochs: 10 })
  t.like(resolveConfig({ model: 'dsnn3', lr: '0.001' }), { lr: 1e-3, optimizer: 'adamw', 'batch-size': 128 })
  // Another model trains with the plain defaults: --model dsnn is the two-block run of 4 epochs.
  const plain = resolveConfig({ model: 'dsnn' })
  t.like(plain, {
    model: 'dsnn',
    augment: 'none',
    width: DSNN_WIDTH,
    epochs: 4,
    'batch-size': 64,
    'time-steps': 0,
    optimizer: 'adam',
    lr: 2e-3,
    'label-smoothing': 0,
  })
  t.is(plain.ema, undefined)
  t.like(resolveConfig({ dataset: 'mnist', model: 'snn' }), { optimizer: 'sgd', lr: 0.1, augment: 'none', epochs: 4 })
  t.is(resolveConfig({ dataset: 'n-fashion-mnist' }).augment, 'none')
  t.is(resolveConfig({ augment: 'crop' }).augment, 'crop')
  t.is(resolveConfig({ augment: 'affine' }).augment, 'affine')
  t.is(resolveConfig({ model: 'snn', width: '16' }).width, 16)
  t.is(resolveConfig({ width: '16' }).width, 16)
  t.is(resolveConfig({ model: 'dsnn18' }).width, undefined)
  t.throws(() => resolveConfig({ augment: 'mirror' }), {
    message:
      /--augment: expected one of none, crop, flip, crop-flip, affine, affine-flip, elastic, affine-elastic, erase, flip-erase, crop-flip-erase/,
  })
  t.throws(() => resolveConfig({ model: 'dsnn18', width: '64' }), {
    message: /--width: sets the channels of the dsnn, dsnn3 and snn networks; the model dsnn18 has its own widths/,
  })
  t.throws(() => resolveConfig({ width: '0' }), { message: /--width: expected an integer >= 1/ })
})

test('--weight-decay: none for sgd and adam, 0.01 for adamw unless given or a recipe sets it; 0 allowed, negatives refused', (t) => {
  t.is(resolveConfig({ model: 'dsnn' })['weight-decay'], 0)
  t.is(resolveConfig({ model: 'snn' })['weight-decay'], 0)
  t.is(resolveConfig({ model: 'dsnn', optimizer: 'adamw' })['weight-decay'], 0.01)
  t.is(resolveConfig({ optimizer: 'adamw', 'weight-decay': '0' })['weight-decay'], 0)
  t.is(resolveConfig({ 'weight-decay': '5e-4' })['weight-decay'], 5e-4)
  t.is(
    resolveConfig({}, { path: 'c.json', values: { optimizer: 'adamw', 'weight-decay': 0.05 } })['weight-decay'],
    0.05,
  )
  for (const bad of ['-0.1', 'x', '', 'Infinity', '1e39']) {
    t.throws(() => resolveConfig({ 'weight-decay': bad }), { message: /--weight-decay: expected a number >= 0/ })
  }
})

test('crop-flip shows every sample as a padded crop, mirrored or not, fixed by seed and epoch', async (t) => {
  const data = images(40)
  const seen = await collect(augmentTrainSet('--augment', data, 'crop-flip'), 0)
  let flips = 0
  const shifts = new Set<string>()
  for (const [b, batch] of seen.entries()) {
    for (let j = 0; j < batch.size; j++) {
      const index = b * 4 + j
      t.is(batch.y[j], data.labels[index])
      const ways = explain(data.get(index).x, batch.x.subarray(j * H * W, (j + 1) * H * W))
      t.true(ways.length > 0, `sample ${index} is no crop or flip of its image`)
      if (ways[0].flipped) flips++
      shifts.add(`${ways[0].dy},${ways[0].dx}`)
    }
  }
  // 40 samples: both orientations and several offsets occur.
  t.true(flips > 5 && flips < 35, `${flips} of 40 mirrored`)
  t.true(shifts.size > 5, `${shifts.size} distinct offsets`)
  const again = await collect(augmentTrainSet('--augment', data, 'crop-flip'), 0)
  t.deepEqual(
    again.map((b) => Array.from(b.x)),
    seen.map((b) => Array.from(b.x)),
  )
  const next = await collect(augmentTrainSet('--augment', data, 'crop-flip'), 1)
  t.notDeepEqual(
    next.map((b) => Array.from(b.x)),
    seen.map((b) => Array.from(b.x)),
  )
})

test('flip alone mirrors without shifting, crop alone shifts without mirroring, none is the data', async (t) => {
  const data = images(24)
  for (const [augment, check] of [
    ['flip', (w: { dy: number; dx: number; flipped: boolean }) => w.dy === 0 && w.dx === 0],
    ['crop', (w: { dy: number; dx: number; flipped: boolean }) => !w.flipped],
  ] as const) {
    const seen = await collect(augmentTrainSet('--augment', data, augment), 0)
    for (const [b, batch] of seen.entries()) {
      for (let j = 0; j < batch.size; j++) {
        const ways = explain(data.get(b * 4 + j).x, batch.x.subarray(j * H * W, (j + 1) * H * W))
        t.true(ways.some(check), `${augment}: sample ${b * 4 + j}`)
      }
    }
  }
  t.is(augmentTrainSet('--augment', data, 'none'), data)
})

/** The affine map of `--augment affine` (Rust's `affine`): output pixel (oy, ox) samples the
 * input bilinearly at the inverse of turning by `deg`, scaling by `scale` about the centre and
 * shifting by (dy, dx). */
function affineReference(src: Float32Array, deg: number, dy: number, dx: number, scale: number): Float32Array {
  const out = new Float32Array(H * W)
  const [sin, cos] = [Math.sin((deg * Math.PI) / 180), Math.cos((deg * Math.PI) / 180)]
  const [cy, cx] = [(H - 1) / 2, (W - 1) / 2]
  const at = (y: number, x: number) => (y < 0 || x < 0 || y >= H || x >= W ? 0 : src[y * W + x])
  for (let oy = 0; oy < H; oy++) {
    for (let ox = 0; ox < W; ox++) {
      const v = (oy - cy - dy) / scale
      const u = (ox - cx - dx) / scale
      const [sx, sy] = [cx + u * cos - v * sin, cy + u * sin + v * cos]
      const [y0, x0] = [Math.floor(sy), Math.floor(sx)]
      const [fy, fx] = [sy - y0, sx - x0]
      const top = at(y0, x0) * (1 - fx) + at(y0, x0 + 1) * fx
      const bottom = at(y0 + 1, x0) * (1 - fx) + at(y0 + 1, x0 + 1) * fx
      out[oy * W + ox] = top * (1 - fy) + bottom * fy
    }
  }
  return out
}

test('affine turns, scales and shifts each sample within the documented ranges, fixed by seed and epoch', async (t) => {
  // One picture (pixel k holds 1 + k) 16 times: each sample's draw is read back from it.
  const data = new TensorDataset({
    name: 'ramp',
    images: Float32Array.from({ length: 16 * H * W }, (_, i) => 1 + (i % (H * W))),
    labels: Uint8Array.from({ length: 16 }, (_, i) => i % 3),
    sampleShape: [1, H, W],
    numClasses: 3,
  })
  const seen = await collect(augmentTrainSet('--augment', data, 'affine'), 0)
  const maxShift = Math.round(AFFINE.translate * Math.max(H, W))
  let moved = 0
  for (const [b, batch] of seen.entries()) {
    for (let j = 0; j < batch.size; j++) {
      const index = b * 4 + j
      t.is(batch.y[j], data.labels[index])
      const source = data.get(index).x
      const got = batch.x.subarray(j * H * W, (j + 1) * H * W)
      if (Array.from(got).some((v, k) => v !== source[k])) moved++
      // Search the documented ranges (angle and scale on a grid, whole-pixel shifts) for the
      // draw closest to what the pipeline produced: it must come within the grid's resolution
      // (under 0.02 pixels of position, below 1 in value at the steepest, zero-padded edge),
      // while a shift one pixel off moves the inner values by 1 (across) or 7 (down).
      let best = Infinity
      for (let deg = -AFFINE.degrees; deg <= AFFINE.degrees; deg += 0.25) {
        for (let scale = AFFINE.scale[0]; scale <= AFFINE.scale[1] + 1e-9; scale += 0.005) {
          for (let dy = -maxShift; dy <= maxShift; dy++) {
            for (let dx = -maxShift; dx <= maxShift; dx++) {
              const ref = affineReference(source, deg, dy, dx, scale)
              let err = 0
              for (let k = 0; k < ref.length && err < best; k++) err = Math.max(err, Math.abs(ref[k] - got[k]))
              best = Math.min(best, err)
            }
          }
        }
      }
      t.true(best < 1, `sample ${index}: no draw within the ranges explains it (closest max error ${best})`)
    }
  }
  t.true(moved > 12, `${moved} of 16 samples changed`)
  const again = await collect(augmentTrainSet('--augment', data, 'affine'), 0)
  t.deepEqual(
    again.map((b) => Array.from(b.x)),
    seen.map((b) => Array.from(b.x)),
  )
  const next = await collect(augmentTrainSet('--augment', data, 'affine'), 1)
  t.notDeepEqual(
    next.map((b) => Array.from(b.x)),
    seen.map((b) => Array.from(b.x)),
  )
})

test('frames get one crop and flip for all their time steps, batches stay time-major', async (t) => {
  const T = 3
  const n = 8
  const size = H * W
  const counts = new Uint8Array(n * T * size)
  for (let i = 0; i < n; i++)
    for (let s = 0; s < T; s++)
      for (let p = 0; p < size; p++) counts[(i * T + s) * size + p] = 1 + ((p + 7 * s + i) % 200)
  const frames = new FramesDataset(
    counts,
    Uint32Array.from({ length: n }, (_, i) => i % 2),
    [T, 1, H, W],
  )
  const data = augmentTrainSet('--augment', frames, 'crop-flip')
  t.true(data.timeMajor)
  for await (const b of data.batches(n, { seed: 3 })) {
    for (let j = 0; j < n; j++) {
      const per = Array.from({ length: T }, (_, s) =>
        explain(
          frames.get(j).frames.subarray(s * size, (s + 1) * size),
          b.x.subarray((s * n + j) * size, (s * n + j + 1) * size),
        ).map((w) => `${w.dy},${w.dx},${w.flipped}`),
      )
      const common = per[0].filter((w) => per.every((ways) => ways.includes(w)))
      t.true(common.length > 0, `sample ${j}: no one crop and flip explains all ${T} frames`)
    }
  }
})

test('augmentation is refused for image folders (their own crops) and for samples that are not images', (t) => {
  const folder = new LoaderData(
    { length: 1, get: () => ({ image: new Float32Array(12), shape: [3, 2, 2], label: 0 }) },
    { pipeline: {}, sampleShape: [3, 2, 2], numClasses: 1 },
  )
  t.throws(() => augmentTrainSet('--augment', folder, 'flip'), {
    message: /--augment: flip is for data held in memory/,
  })
  t.is(augmentTrainSet('--augment', folder, 'none'), folder)
  const vectors = new TensorDataset({
    name: 'vectors',
    images: new Float32Array(8),
    labels: Uint8Array.of(0, 1),
    sampleShape: [4],
    numClasses: 2,
  })
  t.throws(() => augmentTrainSet('--augment', vectors, 'crop'), {
    message: /--augment: crop needs image samples \[C, H, W\], the data has samples \[4\]/,
  })
})

test('elastic and erase kinds are fixed by seed and epoch; erase zeroes one box, the same for all time steps', async (t) => {
  t.deepEqual(ELASTIC, { alpha: 68, sigma: 4 })
  t.deepEqual(ERASE, { p: 0.5, scale: [0.02, 0.33], ratio: [0.3, 3.3], value: 0 })
  const data = images(16)
  for (const augment of ['elastic', 'affine-elastic', 'erase', 'flip-erase', 'crop-flip-erase'] as const) {
    const seen = await collect(augmentTrainSet('--augment', data, augment), 0)
    const again = await collect(augmentTrainSet('--augment', data, augment), 0)
    const next = await collect(augmentTrainSet('--augment', data, augment), 1)
    const flat = (bs: DataBatch[]) => bs.flatMap((b) => Array.from(b.x))
    t.deepEqual(flat(again), flat(seen), `${augment}: same seed and epoch`)
    t.notDeepEqual(flat(next), flat(seen), `${augment}: another epoch`)
    t.true(flat(seen).every(Number.isFinite), augment)
  }
  // erase alone: every sample is the image, or the image with one rectangle of zeros.
  const seen = await collect(augmentTrainSet('--augment', data, 'erase'), 0)
  let erased = 0
  for (const [b, batch] of seen.entries()) {
    for (let j = 0; j < 4; j++) {
      const source = data.get(b * 4 + j).x
      const out = batch.x.subarray(j * H * W, (j + 1) * H * W)
      const zeros: [number, number][] = []
      for (let i = 0; i < H * W; i++) {
        if (out[i] === 0) zeros.push([Math.floor(i / W), i % W])
        else t.is(out[i], source[i])
      }
      if (zeros.length === 0) continue
      erased++
      const ys = zeros.map((z) => z[0])
      const xs = zeros.map((z) => z[1])
      const box = (Math.max(...ys) - Math.min(...ys) + 1) * (Math.max(...xs) - Math.min(...xs) + 1)
      t.is(zeros.length, box, `sample ${b * 4 + j}: one rectangle`)
    }
  }
  t.true(erased > 2 && erased < 16, `${erased} of 16 erased with p 0.5`)
  // Frames: one box for all time steps.
  const T = 3
  const n = 8
  const size = H * W
  const counts = new Uint8Array(n * T * size).fill(1)
  const frames = new FramesDataset(counts, new Uint32Array(n), [T, 1, H, W])
  for await (const b of augmentTrainSet('--augment', frames, 'flip-erase').batches(n, { seed: 4 })) {
    for (let j = 0; j < n; j++) {
      const at = (s: number) => Array.from(b.x.subarray((s * n + j) * size, (s * n + j + 1) * size))
      t.deepEqual(at(1), at(0))
      t.deepEqual(at(2), at(0))
    }
  }
})

test('transforms.elastic and transforms.randomErasing check their arguments, naming them', (t) => {
  t.deepEqual(transforms.elastic(34, 4), { kind: 'elastic', alpha: 34, sigma: 4, p: 1 })
  t.deepEqual(transforms.randomErasing(), {
    kind: 'randomErasing',
    p: 0.5,
    scale: [0.02, 0.33],
    ratio: [0.3, 3.3],
    value: 0,
  })
  t.like(transforms.randomErasing({ p: 1, value: 'random' }), { p: 1, value: 'random' })
  t.like(transforms.randomErasing({ value: [0.1, 0.2, 0.3] }), { value: [0.1, 0.2, 0.3] })
  t.throws(() => transforms.elastic(-1, 4), { message: /elastic alpha/ })
  t.throws(() => transforms.elastic(Number.NaN, 4), { message: /elastic alpha/ })
  t.throws(() => transforms.elastic(34, -2), { message: /elastic sigma/ })
  t.throws(() => transforms.elastic(34, 4, 1.5), { message: /elastic p/ })
  t.throws(() => transforms.randomErasing({ p: -0.1 }), { message: /randomErasing p/ })
  t.throws(() => transforms.randomErasing({ scale: [0.5, 0.2] }), { message: /randomErasing scale/ })
  t.throws(() => transforms.randomErasing({ scale: [0.1, 1.5] }), { message: /randomErasing scale/ })
  t.throws(() => transforms.randomErasing({ ratio: [0, 3] }), { message: /randomErasing ratio/ })
  t.throws(() => transforms.randomErasing({ value: 'noise' as 'random' }), { message: /randomErasing value/ })
  t.throws(() => transforms.randomErasing({ value: [] }), { message: /randomErasing value/ })
})
