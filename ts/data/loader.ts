// A data loader for event and image datasets: shuffling, batching, a fixed seed, and a bounded
// queue of batches prepared ahead (decode + integrate + augment) on the libuv pool while the
// current batch trains, so data time hides behind compute time.
import { argError, DualstreamError, fromNative } from '../errors'

import native = require('../native')

import type { NativeFrames, NativeSample } from '../../native'
import type { DataBatch, LabelledData } from '../model'
import type { EncoderSpec } from './encoders'
import { type Events, type FrameSpec, frameSpecJson, toNativeEvents } from './frames'
import { assertSeed, deriveSeed, permutation, Rng } from './random'
import { type SyntheticOptions, syntheticOptionsJson } from './synthetic'
import type { TransformSpec } from './transforms'

export interface EventSample {
  events: Events
  label: number
}

export interface ImageSample {
  /** `[C, H, W]` values, row-major. */
  image: Float32Array
  shape: readonly number[]
  label: number
}

/** Frames made earlier (by `integrateEvents`, a `FrameCache`, `FramesDataset`): only transformed. */
export interface FramesSample {
  /** `[T, C, H, W]` values, row-major. */
  frames: Float32Array
  shape: readonly number[]
  label: number
}

/** An image file (JPEG or PNG) decoded to RGB `[3, H, W]` in [0, 1] while the batch is prepared. */
export interface FileSample {
  file: string
  label: number
}

export type LoaderSample = EventSample | ImageSample | FramesSample | FileSample

/**
 * What a DataLoader reads: a length and `get(i)`, which may be async (decoding a file, say).
 * Event datasets (N-MNIST, DVS Gesture, CIFAR10-DVS readers, `NFashionMnist`) resolve to
 * `{ events, label }`; image datasets to `{ image, shape, label }`.
 */
export interface IndexedDataset {
  readonly length: number
  /** Sample `index`, directly or as a Promise. */
  get(index: number): LoaderSample | Promise<LoaderSample>
}

/** What the loader does to each sample, in Rust (crates/data/src/pipeline.rs). */
export interface PipelineSpec {
  /** Event samples (and synthetic ones): how they become frames. */
  frames?: FrameSpec
  /** Grey image samples: record them with the synthetic event camera first, then frame them. */
  synthetic?: SyntheticOptions
  /** Image samples without `synthetic`: how `[C, H, W]` becomes `[T, C, H, W]`; none keeps `[C, H, W]`. */
  encoder?: EncoderSpec
  /** Augmentations in order: on frames after integration, on images before encoding. */
  transforms?: TransformSpec[]
}

export interface DataLoaderOptions {
  batchSize: number
  pipeline: PipelineSpec
  /** Default false. */
  shuffle?: boolean
  /** Seeds the order (with the epoch) and every sample's augmentation (with epoch and index). Default 0. */
  seed?: number
  /** Skip a final short batch. Default false. */
  dropLast?: boolean
  /** Batches prepared ahead of the one being consumed (bounded queue). 0 prepares on demand. Default 2. */
  prefetch?: number
}

export interface LoadedBatch {
  /** `[T, N, C, H, W]` (time-major, what a `sequence` model takes) or `[N, C, H, W]`. */
  x: Float32Array
  shape: number[]
  y: Uint32Array
  /** Dataset index of each sample. */
  indices: Uint32Array
  size: number
  /** Milliseconds the consumer waited for this batch (0 when it was ready: data time hidden). */
  waitMs: number
  /** Milliseconds from starting to prepare this batch to it being ready. */
  prepareMs: number
}

function isEventSample(s: LoaderSample): s is EventSample {
  return (s as EventSample).events !== undefined
}

/**
 * Frames held in memory, one `[T, C, H, W]` block per sample (stored as event counts up to 255
 * in a Uint8Array: 4x smaller than floats). Build it once from an event dataset with
 * `FramesDataset.from`, then train many epochs without integrating again.
 */
export class FramesDataset implements IndexedDataset, LabelledData {
  readonly length: number
  readonly sampleShape: readonly number[]
  readonly numClasses: number
  /** Its `batches` are `[T, N, C, H, W]`, what a `sequence` model's `fit`/`evaluate` take. */
  readonly timeMajor = true
  private readonly counts: Uint8Array
  private readonly labels: Uint32Array
  private readonly sampleSize: number

  /** `numClasses` defaults to the largest label + 1. */
  constructor(counts: Uint8Array, labels: Uint32Array, sampleShape: readonly number[], numClasses?: number) {
    if (
      !Array.isArray(sampleShape) ||
      sampleShape.length !== 4 ||
      !sampleShape.every((d) => Number.isInteger(d) && d > 0)
    ) {
      throw argError('FramesDataset sampleShape', '[T, C, H, W] of positive integers', sampleShape)
    }
    this.sampleSize = sampleShape.reduce((a, b) => a * b, 1)
    if (
      !(counts instanceof Uint8Array) ||
      !(labels instanceof Uint32Array) ||
      counts.length !== labels.length * this.sampleSize
    ) {
      throw argError(
        'FramesDataset counts',
        `a Uint8Array of ${labels?.length} x ${this.sampleSize} counts with a Uint32Array of labels`,
        counts,
      )
    }
    this.counts = counts
    this.labels = labels
    this.length = labels.length
    this.sampleShape = Object.freeze([...sampleShape])
    let top = 0
    for (const l of labels) top = Math.max(top, l + 1)
    if (numClasses !== undefined && (!Number.isInteger(numClasses) || numClasses < top)) {
      throw argError('FramesDataset numClasses', `an integer >= ${top} (the largest label + 1)`, numClasses)
    }
    this.numClasses = numClasses ?? top
  }

  /**
   * Integrates every sample of `dataset` with `frames` (in batches, on the libuv pool). Counts
   * above 255 are an error rather than silently clipped.
   *
   * @example
   * ```ts
   * const train = await FramesDataset.from(new NMnist('/data/N-MNIST'), { split: 'number', frames: 4 })
   * await model.fit(train, { epochs: 2, batchSize: 64, optimizer: adam({ lr: 1e-3 }) })
   * ```
   */
  static async from(
    dataset: IndexedDataset,
    frames: FrameSpec,
    options: { batchSize?: number; onProgress?: (done: number, total: number) => void } = {},
  ): Promise<FramesDataset> {
    const loader = new DataLoader(dataset, { batchSize: options.batchSize ?? 64, pipeline: { frames }, prefetch: 2 })
    let counts: Uint8Array | undefined
    let shape: number[] | undefined
    const labels = new Uint32Array(dataset.length)
    let done = 0
    for await (const b of loader.epoch(0)) {
      const [t, n, ...rest] = b.shape
      if (b.shape.length !== 5)
        throw new DualstreamError(
          'ERR_SHAPE',
          `FramesDataset.from: expected [T, N, C, H, W] batches, got [${b.shape.join(', ')}]`,
        )
      shape ??= [t, ...rest]
      const size = shape.reduce((a, c) => a * c, 1)
      counts ??= new Uint8Array(dataset.length * size)
      const step = size / t
      for (let j = 0; j < n; j++) {
        const base = b.indices[j] * size
        labels[b.indices[j]] = b.y[j]
        for (let s = 0; s < t; s++) {
          const src = b.x.subarray((s * n + j) * step, (s * n + j + 1) * step)
          for (let k = 0; k < step; k++) {
            const v = src[k]
            if (v > 255)
              throw new DualstreamError(
                'ERR_VALUE',
                `FramesDataset.from: sample ${b.indices[j]} has a count of ${v} (> 255) in frame ${s}; use more frames or no downscale`,
              )
            counts[base + s * step + k] = v
          }
        }
      }
      done += n
      options.onProgress?.(done, dataset.length)
    }
    if (!counts || !shape) throw new DualstreamError('ERR_VALUE', 'FramesDataset.from: the data set is empty')
    const declared = dataset as { numClasses?: unknown; classNames?: readonly unknown[] }
    return new FramesDataset(
      counts,
      labels,
      shape,
      typeof declared.numClasses === 'number' ? declared.numClasses : declared.classNames?.length,
    )
  }

  /** `n` distinct samples chosen at random (seeded), kept in dataset order. */
  sample(n: number, seed = 0): FramesDataset {
    if (!Number.isInteger(n) || n < 0) throw argError('FramesDataset sample n', 'a non-negative integer', n)
    assertSeed('FramesDataset sample seed', seed)
    const idx = permutation(this.length, new Rng(seed)).subarray(0, Math.min(n, this.length)).sort()
    const counts = new Uint8Array(idx.length * this.sampleSize)
    idx.forEach((i, j) => {
      counts.set(this.counts.subarray(i * this.sampleSize, (i + 1) * this.sampleSize), j * this.sampleSize)
    })
    return new FramesDataset(
      counts,
      Uint32Array.from(idx, (i) => this.labels[i]),
      this.sampleShape,
      this.numClasses,
    )
  }

  /**
   * Time-major mini-batches `x` `[T, N, C, H, W]` over one epoch, in the order of
   * `DataLoader.order` for the same seed and epoch. `x` is a fresh array per batch.
   */
  *batches(
    batchSize: number,
    opts: { shuffle?: boolean; seed?: number; epoch?: number; dropLast?: boolean } = {},
  ): Generator<{ x: Float32Array; y: Uint32Array; size: number }> {
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw argError('FramesDataset batches batchSize', 'a positive integer', batchSize)
    const { shuffle = false, seed = 0, epoch = 0, dropLast = false } = opts
    assertSeed('FramesDataset batches seed', seed)
    const order = shuffle
      ? permutation(this.length, new Rng(deriveSeed(seed, epoch)))
      : Uint32Array.from({ length: this.length }, (_, i) => i)
    const count = dropLast ? Math.floor(this.length / batchSize) : Math.ceil(this.length / batchSize)
    const t = this.sampleShape[0]
    const step = this.sampleSize / t
    for (let b = 0; b < count; b++) {
      const members = order.subarray(b * batchSize, Math.min((b + 1) * batchSize, this.length))
      const n = members.length
      const x = new Float32Array(n * this.sampleSize)
      const y = new Uint32Array(n)
      members.forEach((i, j) => {
        y[j] = this.labels[i]
        for (let s = 0; s < t; s++) {
          const src = this.counts.subarray(i * this.sampleSize + s * step, i * this.sampleSize + (s + 1) * step)
          x.set(src, (s * n + j) * step)
        }
      })
      yield { x, y, size: n }
    }
  }

  /** Sample `index` as `{ frames, shape, label }` (the counts as floats). */
  get(index: number): FramesSample {
    if (!Number.isInteger(index) || index < 0 || index >= this.length)
      throw argError('FramesDataset index', `an integer in [0, ${this.length})`, index)
    const c = this.counts.subarray(index * this.sampleSize, (index + 1) * this.sampleSize)
    return { frames: Float32Array.from(c), shape: this.sampleShape, label: this.labels[index] }
  }
}

/**
 * Batches any indexed data set (`{ length, get(i) }` whose samples are events, images or
 * frames) through a pipeline that runs in Rust on the libuv pool: events to frames, seeded
 * transforms, encoders, stacking into time-major `[T, N, ...]` batches. Shuffling is fixed by
 * (seed, epoch), augmentation by (seed, epoch, index); up to `prefetch` batches are prepared
 * while the current one trains.
 *
 * @example
 * ```ts
 * const loader = new DataLoader(new DvsGesture('/data/DvsGesture'), {
 *   batchSize: 16, shuffle: true, seed: 0, dropLast: true, prefetch: 2,
 *   pipeline: { frames: { split: 'number', frames: 16 }, transforms: [transforms.randomCrop(128, 4)] },
 * })
 * for await (const b of loader.epoch(0)) await model.trainBatch(b.x, b.y)
 * ```
 */
export class DataLoader {
  readonly dataset: IndexedDataset
  readonly batchSize: number
  readonly shuffle: boolean
  readonly seed: number
  readonly dropLast: boolean
  readonly prefetch: number
  readonly pipeline: PipelineSpec
  private readonly specJson: string

  /** Checks the options and the pipeline; nothing is read until an epoch starts. */
  constructor(dataset: IndexedDataset, options: DataLoaderOptions) {
    if (!dataset || typeof dataset.get !== 'function' || !Number.isInteger(dataset.length) || dataset.length < 0) {
      throw argError('DataLoader dataset', 'an indexed data set { length, get(i) }', dataset)
    }
    if (typeof options !== 'object' || options === null)
      throw argError('DataLoader options', 'an options object with batchSize and pipeline', options)
    const { batchSize, shuffle = false, seed = 0, dropLast = false, prefetch = 2, pipeline } = options
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw argError('DataLoader batchSize', 'a positive integer', batchSize)
    if (!Number.isInteger(prefetch) || prefetch < 0 || prefetch > 64)
      throw argError('DataLoader prefetch', 'an integer in [0, 64]', prefetch)
    assertSeed('DataLoader seed', seed)
    this.specJson = pipelineJson(pipeline)
    this.dataset = dataset
    this.batchSize = batchSize
    this.shuffle = shuffle
    this.seed = seed
    this.dropLast = dropLast
    this.prefetch = prefetch
    this.pipeline = pipeline
  }

  /** Batches per epoch (the last one smaller unless `dropLast`). */
  get numBatches(): number {
    const n = this.dataset.length / this.batchSize
    return this.dropLast ? Math.floor(n) : Math.ceil(n)
  }

  /** Sample order of an epoch: a permutation fixed by (seed, epoch) when shuffling. */
  order(epoch: number): Uint32Array {
    if (!Number.isInteger(epoch) || epoch < 0 || epoch >= 2 ** 32)
      throw argError('epoch', 'a non-negative integer', epoch)
    if (this.shuffle) return permutation(this.dataset.length, new Rng(deriveSeed(this.seed, epoch)))
    return Uint32Array.from({ length: this.dataset.length }, (_, i) => i)
  }

  /** Prepares the batch of the given dataset indices (augmentation seeded by seed, epoch, index). */
  async prepare(indices: Uint32Array, epoch = 0): Promise<Omit<LoadedBatch, 'waitMs'>> {
    const started = performance.now()
    const samples = await Promise.all(Array.from(indices, (i) => this.dataset.get(i)))
    const y = new Uint32Array(indices.length)
    const natives: NativeSample[] = samples.map((s, j) => {
      const where = `data set sample ${indices[j]}`
      if (!s || typeof s !== 'object') throw argError(where, '{ events, label } or { image, shape, label }', s)
      if (!Number.isInteger(s.label) || s.label < 0) throw argError(`${where} label`, 'a non-negative integer', s.label)
      y[j] = s.label
      if (isEventSample(s)) return { events: toNativeEvents(s.events, `${where} events`) }
      if ((s as FileSample).file !== undefined) {
        const f = (s as FileSample).file
        if (typeof f !== 'string' || f.length === 0) throw argError(`${where} file`, 'a file path string', f)
        return { file: f }
      }
      if ((s as FramesSample).frames !== undefined) {
        const f = s as FramesSample
        if (!(f.frames instanceof Float32Array) || !Array.isArray(f.shape) || f.shape.length !== 4) {
          throw argError(where, '{ frames: Float32Array, shape: [T, C, H, W], label }', s)
        }
        return { image: f.frames, shape: [...f.shape] }
      }
      const img = s as ImageSample
      if (!(img.image instanceof Float32Array) || !Array.isArray(img.shape))
        throw argError(where, '{ events, label }, { image: Float32Array, shape, label } or { frames, shape, label }', s)
      return { image: img.image, shape: [...img.shape] }
    })
    const seeds = Array.from(indices, (i) => deriveSeed(this.seed, epoch, i))
    let out: NativeFrames
    try {
      out = await native.prepareBatchNative(natives, this.specJson, seeds)
    } catch (e) {
      throw fromNative(e)
    }
    return { x: out.data, shape: out.shape, y, indices, size: indices.length, prepareMs: performance.now() - started }
  }

  /**
   * The batches of one epoch. Up to `prefetch` batches are being prepared while the consumer
   * works on the current one; leaving the loop early lets the prepared ones finish unused.
   */
  async *epoch(epoch = 0): AsyncGenerator<LoadedBatch, void, undefined> {
    const order = this.order(epoch)
    const count = this.numBatches
    const slice = (b: number) => order.subarray(b * this.batchSize, Math.min((b + 1) * this.batchSize, order.length))
    const queue: Promise<Omit<LoadedBatch, 'waitMs'>>[] = []
    const launch = (b: number) => {
      const p = this.prepare(slice(b), epoch)
      // Awaited later; without this a failure of a batch not yet awaited would be "unhandled".
      p.catch(() => undefined)
      queue.push(p)
    }
    let next = 0
    while (next < Math.min(count, this.prefetch)) launch(next++)
    for (let b = 0; b < count; b++) {
      if (queue.length === 0) launch(next++)
      const waitStart = performance.now()
      const batch = await queue.shift()!
      const waitMs = performance.now() - waitStart
      if (next < count && this.prefetch > 0) launch(next++)
      yield { ...batch, waitMs }
    }
  }
}

export interface LoaderDataOptions {
  pipeline: PipelineSpec
  /** One prepared sample's shape: `[C, H, W]`, or `[T, C, H, W]` for sequences. */
  sampleShape: readonly number[]
  numClasses: number
  /** Batches come `[T, N, ...]` (a pipeline with an encoder or frames). Default false. */
  timeMajor?: boolean
  /** Batches prepared ahead. Default 2. */
  prefetch?: number
}

/**
 * A data set read through a DataLoader, for `Model.fit` / `evaluate` / `energy`: each epoch's
 * batches are decoded, transformed and encoded in Rust on the libuv pool, `prefetch` batches
 * ahead of the one training. The order and every sample's augmentation follow (seed, epoch,
 * index), as `DataLoader` does, so a run is reproducible.
 */
export class LoaderData implements LabelledData {
  readonly length: number
  readonly sampleShape: readonly number[]
  readonly numClasses: number
  readonly timeMajor: boolean
  readonly dataset: IndexedDataset
  readonly pipeline: PipelineSpec
  readonly prefetch: number

  constructor(dataset: IndexedDataset, options: LoaderDataOptions) {
    if (typeof options !== 'object' || options === null)
      throw argError('LoaderData options', '{ pipeline, sampleShape, numClasses }', options)
    const { sampleShape, numClasses, timeMajor = false, prefetch = 2 } = options
    if (
      !Array.isArray(sampleShape) ||
      sampleShape.length < 1 ||
      !sampleShape.every((d) => Number.isInteger(d) && d > 0)
    )
      throw argError('LoaderData sampleShape', 'an array of positive integers', sampleShape)
    if (!Number.isInteger(numClasses) || numClasses < 1)
      throw argError('LoaderData numClasses', 'a positive integer', numClasses)
    pipelineJson(options.pipeline)
    this.dataset = dataset
    this.length = dataset.length
    this.sampleShape = Object.freeze([...sampleShape])
    this.numClasses = numClasses
    this.timeMajor = timeMajor
    this.pipeline = options.pipeline
    this.prefetch = prefetch
  }

  async *batches(
    batchSize: number,
    options: { shuffle?: boolean; seed?: number; epoch?: number; dropLast?: boolean } = {},
  ): AsyncGenerator<DataBatch, void, undefined> {
    const { shuffle = false, seed = 0, epoch = 0, dropLast = false } = options
    const loader = new DataLoader(this.dataset, {
      batchSize,
      pipeline: this.pipeline,
      shuffle,
      seed,
      dropLast,
      prefetch: this.prefetch,
    })
    const expected = this.sampleShape.reduce((a, b) => a * b, 1)
    for await (const b of loader.epoch(epoch)) {
      if (b.x.length !== expected * b.size)
        throw new DualstreamError(
          'ERR_SHAPE',
          `LoaderData: the pipeline made batches [${b.shape.join(', ')}], expected samples [${this.sampleShape.join(', ')}] (set sampleShape to what the pipeline outputs)`,
        )
      yield { x: b.x, y: b.y, size: b.size }
    }
  }

  /** `n` distinct samples chosen at random (seeded), kept in dataset order. */
  sample(n: number, seed = 0): LoaderData {
    if (!Number.isInteger(n) || n < 0) throw argError('LoaderData sample n', 'a non-negative integer', n)
    assertSeed('LoaderData sample seed', seed)
    const idx = permutation(this.length, new Rng(seed)).subarray(0, Math.min(n, this.length)).sort()
    const d = this.dataset
    const subset: IndexedDataset = { length: idx.length, get: (i: number) => d.get(idx[i]) }
    return new LoaderData(subset, {
      pipeline: this.pipeline,
      sampleShape: this.sampleShape,
      numClasses: this.numClasses,
      timeMajor: this.timeMajor,
      prefetch: this.prefetch,
    })
  }
}

/** Checks a pipeline spec and returns its JSON for the engine. */
export function pipelineJson(pipeline: PipelineSpec): string {
  if (typeof pipeline !== 'object' || pipeline === null)
    throw argError('pipeline', 'a pipeline spec { frames?, synthetic?, encoder?, transforms? }', pipeline)
  const out: Record<string, unknown> = {}
  if (pipeline.frames !== undefined) out.frames = JSON.parse(frameSpecJson(pipeline.frames, 'pipeline.frames'))
  if (pipeline.synthetic !== undefined) {
    out.synthetic = JSON.parse(syntheticOptionsJson(pipeline.synthetic))
    if (pipeline.frames === undefined)
      throw new DualstreamError('ERR_ARG', 'pipeline: synthetic events need a frames spec to become frames')
  }
  if (pipeline.encoder !== undefined) out.encoder = pipeline.encoder
  if (pipeline.transforms !== undefined) {
    if (!Array.isArray(pipeline.transforms))
      throw argError('pipeline.transforms', 'an array of transform specs', pipeline.transforms)
    out.transforms = pipeline.transforms
  }
  return JSON.stringify(out)
}
