import { argError, DualstreamError } from '../errors'
import { assertSeed, deriveSeed, permutation, Rng } from './random'

export type LabelArray = Uint8Array | Uint32Array

export interface TensorDatasetOptions {
  /** Human-readable name used in logs and error messages, e.g. `fashion-mnist/train`. */
  name: string
  /** All samples, row-major `[length, ...sampleShape]`. Taken by reference, not copied: do not mutate it afterwards. */
  images: Float32Array
  /** One class index per sample, each `< numClasses`. Taken by reference. */
  labels: LabelArray
  /** Shape of one sample, e.g. `[1, 28, 28]`. */
  sampleShape: readonly number[]
  numClasses: number
  /** Optional display names, exactly `numClasses` of them. */
  classNames?: readonly string[]
}

export interface OrderOptions {
  /** Shuffle the sample order. Default `false`. */
  shuffle?: boolean
  /** Base seed (uint32) for shuffling. Default `0`. */
  seed?: number
  /** Epoch index (non-negative integer). With `shuffle`, (seed, epoch) fully determines the order. Default `0`. */
  epoch?: number
}

export interface BatchOptions extends OrderOptions {
  /** Skip the final batch when it is smaller than `batchSize`. Default `false`. */
  dropLast?: boolean
}

export interface Batch {
  /** Row-major `[size, ...sampleShape]`. */
  x: Float32Array
  /** Class index per sample, length `size`. */
  y: Uint32Array
  /** Dataset index of each sample in the batch, length `size`. */
  indices: Uint32Array
  /** Number of samples in this batch (`batchSize`, or fewer for the final batch). */
  size: number
}

function product(shape: readonly number[]): number {
  let p = 1
  for (const d of shape) p *= d
  return p
}

/**
 * An in-memory labelled dataset of fixed-shape float samples.
 *
 * Buffers are held by reference so that loaders can hand over one large preallocated array
 * without doubling peak memory; `subset`/`take`/`sample` copy.
 */
export class TensorDataset {
  readonly name: string
  readonly images: Float32Array
  readonly labels: LabelArray
  readonly length: number
  readonly sampleShape: readonly number[]
  readonly sampleSize: number
  readonly numClasses: number
  readonly classNames: readonly string[]

  /**
   * Labelled samples in one flat buffer (held by reference, not copied).
   *
   * @example
   * ```ts
   * const data = new TensorDataset({ name: 'toy', images: new Float32Array(4 * 784), labels: Uint8Array.of(0, 1, 2, 3), sampleShape: [1, 28, 28], numClasses: 10 })
   * ```
   */
  constructor(opts: TensorDatasetOptions) {
    if (typeof opts !== 'object' || opts === null) throw argError('opts', 'an options object', opts)
    const { name, images, labels, sampleShape, numClasses, classNames } = opts

    if (typeof name !== 'string' || name.length === 0) throw argError('name', 'a non-empty string', name)
    if (!Array.isArray(sampleShape) || sampleShape.length === 0) {
      throw argError('sampleShape', 'a non-empty array of positive integers', sampleShape)
    }
    sampleShape.forEach((d, i) => {
      if (!Number.isInteger(d) || d <= 0) throw argError(`sampleShape[${i}]`, 'a positive integer', d)
    })
    if (!Number.isInteger(numClasses) || numClasses <= 0) throw argError('numClasses', 'a positive integer', numClasses)
    if (!(images instanceof Float32Array)) throw argError('images', 'a Float32Array', images)
    if (!(labels instanceof Uint8Array || labels instanceof Uint32Array)) {
      throw argError('labels', 'a Uint8Array or Uint32Array', labels)
    }

    const sampleSize = product(sampleShape)
    const length = labels.length
    if (images.length !== length * sampleSize) {
      throw new DualstreamError(
        'ERR_ARG',
        `images: expected length ${length * sampleSize} (labels.length ${length} × sample size ${sampleSize} ` +
          `from sampleShape [${sampleShape.join(', ')}]), received length ${images.length}`,
      )
    }
    for (let i = 0; i < length; i++) {
      if (labels[i] >= numClasses) {
        throw argError(`labels[${i}]`, `a class index in [0, ${numClasses}) (numClasses ${numClasses})`, labels[i])
      }
    }
    for (let i = 0; i < images.length; i++) {
      // Finite check inline (no Number.isFinite call) keeps this at memory speed on 47M floats.
      const v = images[i]
      if (v - v !== 0) {
        throw argError(
          `images[${i}]`,
          `a finite number (sample ${Math.floor(i / sampleSize)}, offset ${i % sampleSize})`,
          v,
        )
      }
    }
    if (classNames !== undefined) {
      if (!Array.isArray(classNames) || classNames.length !== numClasses) {
        throw argError('classNames', `an array of ${numClasses} strings (numClasses)`, classNames)
      }
      classNames.forEach((c, i) => {
        if (typeof c !== 'string') throw argError(`classNames[${i}]`, 'a string', c)
      })
    }

    this.name = name
    this.images = images
    this.labels = labels
    this.length = length
    this.sampleShape = Object.freeze([...sampleShape])
    this.sampleSize = sampleSize
    this.numClasses = numClasses
    this.classNames = Object.freeze(
      classNames ? [...classNames] : Array.from({ length: numClasses }, (_, i) => String(i)),
    )
  }

  /** Sample `index` as a view into the dataset's buffer (no copy) and its label. */
  get(index: number): { x: Float32Array; y: number } {
    this.checkIndex('index', index)
    const s = this.sampleSize
    return { x: this.images.subarray(index * s, (index + 1) * s), y: this.labels[index] }
  }

  /** Number of samples per class. */
  classCounts(): number[] {
    const counts = new Array<number>(this.numClasses).fill(0)
    for (let i = 0; i < this.length; i++) counts[this.labels[i]]++
    return counts
  }

  /** A new dataset holding copies of the given samples, in the given order (duplicates allowed). */
  subset(indices: ArrayLike<number>, name = `${this.name}[subset]`): TensorDataset {
    if (indices === null || typeof indices !== 'object' || typeof indices.length !== 'number') {
      throw argError('indices', 'an array-like of sample indices', indices)
    }
    const n = indices.length
    const s = this.sampleSize
    const images = new Float32Array(n * s)
    const labels = new (this.labels.constructor as Uint8ArrayConstructor | Uint32ArrayConstructor)(n)
    for (let j = 0; j < n; j++) {
      const i = indices[j]
      this.checkIndex(`indices[${j}]`, i)
      images.set(this.images.subarray(i * s, (i + 1) * s), j * s)
      labels[j] = this.labels[i]
    }
    return new TensorDataset({
      name,
      images,
      labels,
      sampleShape: this.sampleShape,
      numClasses: this.numClasses,
      classNames: this.classNames,
    })
  }

  /**
   * The first `n` samples (all of them if `n >= length`). Loaders in this package store samples
   * grouped by class, so for a quick run across all classes prefer `sample(n, seed)`.
   */
  take(n: number): TensorDataset {
    if (!Number.isInteger(n) || n < 0) throw argError('n', 'a non-negative integer', n)
    const count = Math.min(n, this.length)
    const idx = new Uint32Array(count)
    for (let i = 0; i < count; i++) idx[i] = i
    return this.subset(idx, `${this.name}[:${count}]`)
  }

  /** `n` distinct samples chosen uniformly at random (seeded), kept in dataset order. */
  sample(n: number, seed = 0): TensorDataset {
    if (!Number.isInteger(n) || n < 0) throw argError('n', 'a non-negative integer', n)
    assertSeed('seed', seed)
    const count = Math.min(n, this.length)
    const idx = permutation(this.length, new Rng(seed)).subarray(0, count).sort()
    return this.subset(idx, `${this.name}[sample ${count} seed ${seed}]`)
  }

  /** The sample order for one epoch: identity, or a permutation determined by (seed, epoch). */
  order(opts: OrderOptions = {}): Uint32Array {
    const { shuffle = false, seed = 0, epoch = 0 } = opts
    assertSeed('seed', seed)
    if (!Number.isInteger(epoch) || epoch < 0 || epoch >= 0x1_0000_0000) {
      throw argError('epoch', 'a non-negative integer', epoch)
    }
    if (shuffle) return permutation(this.length, new Rng(deriveSeed(seed, epoch)))
    const out = new Uint32Array(this.length)
    for (let i = 0; i < this.length; i++) out[i] = i
    return out
  }

  /** How many batches `batches(batchSize, { dropLast })` yields. */
  numBatches(batchSize: number, dropLast = false): number {
    this.checkBatchSize(batchSize)
    return dropLast ? Math.floor(this.length / batchSize) : Math.ceil(this.length / batchSize)
  }

  /**
   * Mini-batches over one epoch.
   *
   * The yielded `x`, `y` and `indices` are views into buffers allocated once per iteration and
   * overwritten by the next batch: copy them if you need to keep a batch (e.g. `Array.from(...)`
   * of this iterable gives N references to the same memory). The final short batch gets
   * shorter views over the same buffers.
   */
  batches(batchSize: number, opts: BatchOptions = {}): IterableIterator<Batch> {
    this.checkBatchSize(batchSize)
    // Computed eagerly so bad options throw at the call site, not at the first next().
    const order = this.order(opts)
    const dropLast = opts.dropLast ?? false
    return this.generateBatches(order, batchSize, this.numBatches(batchSize, dropLast))
  }

  private *generateBatches(order: Uint32Array, batchSize: number, count: number): Generator<Batch, void, undefined> {
    const s = this.sampleSize
    const x = new Float32Array(batchSize * s)
    const y = new Uint32Array(batchSize)
    const indices = new Uint32Array(batchSize)
    for (let b = 0; b < count; b++) {
      const start = b * batchSize
      const size = Math.min(batchSize, this.length - start)
      for (let j = 0; j < size; j++) {
        const i = order[start + j]
        x.set(this.images.subarray(i * s, (i + 1) * s), j * s)
        y[j] = this.labels[i]
        indices[j] = i
      }
      yield size === batchSize
        ? { x, y, indices, size }
        : { x: x.subarray(0, size * s), y: y.subarray(0, size), indices: indices.subarray(0, size), size }
    }
  }

  private checkIndex(argument: string, index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= this.length) {
      throw argError(argument, `an integer index in [0, ${this.length}) for dataset "${this.name}"`, index)
    }
  }

  private checkBatchSize(batchSize: number): void {
    if (!Number.isInteger(batchSize) || batchSize <= 0) throw argError('batchSize', 'a positive integer', batchSize)
  }
}
