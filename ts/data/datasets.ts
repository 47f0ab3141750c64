import { argError, fromNative } from '../errors'

import native = require('../native')

import type { NativeEventDataset, NativeImageDataset } from '../../native'
import type { EventStream } from './events'
import type { EventSample, ImageSample } from './loader'

export type Split = 'train' | 'test'

export interface FolderOptions {
  /** 'train' (default) or 'test'. */
  split?: Split
}

function checkRoot(what: string, root: unknown): string {
  if (typeof root !== 'string' || root.length === 0) throw argError(`${what}(root)`, 'a folder path string', root)
  return root
}

function checkSplit(what: string, opts: FolderOptions): Split {
  if (typeof opts !== 'object' || opts === null) throw argError(`new ${what}(root, opts)`, 'an options object', opts)
  const split = opts.split ?? 'train'
  if (split !== 'train' && split !== 'test') throw argError(`new ${what}(root, opts.split)`, "'train' or 'test'", split)
  return split
}

function checkIndex(what: string, index: unknown, length: number): number {
  if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= length) {
    throw argError(`${what}.get(index)`, `an integer in 0..${length - 1}`, index)
  }
  return index
}

function openNative<T>(open: () => T): T {
  try {
    return open()
  } catch (e) {
    throw fromNative(e)
  }
}

/**
 * A folder of event-camera recordings. Opening lists the samples and reads their labels (from
 * folder names or label files); `get(i)` parses one recording on the thread pool.
 */
export class EventFolderDataset {
  readonly length: number
  /** Label of every sample, in index order. */
  readonly labels: Uint32Array
  readonly classNames: readonly string[]
  readonly width: number
  readonly height: number
  readonly split: Split
  readonly #native: NativeEventDataset
  readonly #name: string

  /** Opens `root` as a folder of `kind` recordings (the subclasses name the kinds). */
  protected constructor(name: string, kind: string, root: string, opts: FolderOptions) {
    checkRoot(`new ${name}`, root)
    this.split = checkSplit(name, opts)
    this.#name = name
    this.#native = openNative(() => native.NativeEventDataset.open(kind, root, this.split))
    this.labels = Uint32Array.from(this.#native.labels())
    this.length = this.labels.length
    this.classNames = Object.freeze(this.#native.classNames())
    ;[this.width, this.height] = this.#native.sensorSize()
  }

  /**
   * The recording (or labelled window) `index` as `{ events, label }`, parsed on the thread pool.
   *
   * @example
   * ```ts
   * const gestures = new DvsGesture('/data/DvsGesture', { split: 'test' })
   * const { events, label } = await gestures.get(0)   // events.t, .x, .y, .p; label 0..10
   * ```
   */
  async get(index: number): Promise<EventSample & { events: EventStream }> {
    checkIndex(this.#name, index, this.length)
    try {
      return await this.#native.get(index)
    } catch (e) {
      throw fromNative(e)
    }
  }
}

/**
 * DVS128 Gesture from the original release (`DvsGesture/`, or its parent): the trials listed in
 * `trials_to_train.txt` / `trials_to_test.txt`, one sample per labelled window of
 * `userXX_<lighting>_labels.csv` (1,176 train / 288 test). Labels 0..10 are the CSV classes
 * 1..11 minus one. Consecutive windows of one trial share a parse of its `.aedat` file.
 */
export class DvsGesture extends EventFolderDataset {
  /** Opens the folder `root`; `opts.split` picks 'train' (default) or 'test'.
   *
   * @example
   * ```ts
   * const train = new DvsGesture('/data/DvsGesture')                 // 1,176 windows
   * const test = new DvsGesture('/data/DvsGesture', { split: 'test' }) // 288 windows
   * ```
   */
  constructor(root: string, opts: FolderOptions = {}) {
    super('DvsGesture', 'dvsgesture', root, opts)
  }
}

/**
 * CIFAR10-DVS: one folder per class (`airplane/` … `truck/`) of AEDAT 2.0 files, events in
 * SpikingJelly's orientation. Split like SpikingJelly: per class, in file-name order, the first
 * 90 % (rounded up) train, the rest test.
 */
export class Cifar10Dvs extends EventFolderDataset {
  /** Opens the folder `root`; `opts.split` picks 'train' (default) or 'test'. */
  constructor(root: string, opts: FolderOptions = {}) {
    super('Cifar10Dvs', 'cifar10dvs', root, opts)
  }
}

/** N-MNIST: `Train/<digit>/*.bin` and `Test/<digit>/*.bin`, 34x34, in file-name order. */
export class NMnist extends EventFolderDataset {
  /** Opens the folder `root`; `opts.split` picks 'train' (default) or 'test'. */
  constructor(root: string, opts: FolderOptions = {}) {
    super('NMnist', 'nmnist', root, opts)
  }
}

/** A folder of 8-bit images with labels; `get(i)` reads one image on the thread pool. */
export class ImageFolderDataset {
  readonly length: number
  readonly labels: Uint32Array
  readonly classNames: readonly string[]
  /** [channels, height, width]. */
  readonly shape: readonly number[]
  readonly split: Split
  readonly #native: NativeImageDataset
  readonly #name: string

  /** Opens `root` as a folder of `kind` images (the subclasses name the kinds). */
  protected constructor(name: string, kind: string, root: string, opts: FolderOptions) {
    checkRoot(`new ${name}`, root)
    this.split = checkSplit(name, opts)
    this.#name = name
    this.#native = openNative(() => native.NativeImageDataset.open(kind, root, this.split))
    this.labels = Uint32Array.from(this.#native.labels())
    this.length = this.labels.length
    this.classNames = Object.freeze(this.#native.classNames())
    this.shape = Object.freeze(this.#native.shape())
  }

  /** The image as `[C, H, W]` values in [0, 1] (byte / 255), the form every loader and encoder takes. */
  async get(index: number): Promise<ImageSample> {
    checkIndex(this.#name, index, this.length)
    let pixels: Uint8Array
    let label: number
    try {
      ;({ pixels, label } = await this.#native.get(index))
    } catch (e) {
      throw fromNative(e)
    }
    const image = new Float32Array(pixels.length)
    for (let i = 0; i < pixels.length; i++) image[i] = pixels[i] / 255
    return { image, shape: this.shape, label }
  }
}

/** CIFAR-10 binary version (`cifar-10-batches-bin/`, or its parent): data_batch_1..5.bin / test_batch.bin. */
export class Cifar10 extends ImageFolderDataset {
  /** Opens the folder `root`; `opts.split` picks 'train' (default) or 'test'. */
  constructor(root: string, opts: FolderOptions = {}) {
    super('Cifar10', 'cifar10', root, opts)
  }
}

/** CIFAR-100 binary version (`cifar-100-binary/`, or its parent): train.bin / test.bin; labels are the fine labels. */
export class Cifar100 extends ImageFolderDataset {
  /** Opens the folder `root`; `opts.split` picks 'train' (default) or 'test'. */
  constructor(root: string, opts: FolderOptions = {}) {
    super('Cifar100', 'cifar100', root, opts)
  }
}

/**
 * The original MNIST / Fashion-MNIST IDX files in one folder: `train-images-idx3-ubyte` and
 * `train-labels-idx1-ubyte` (or `t10k-*` for test), plain or `.gz`. Read whole when opened.
 */
export class Idx extends ImageFolderDataset {
  /** Opens the folder `root`; `opts.split` picks 'train' (default) or 'test'.
   *
   * @example
   * ```ts
   * const test = new Idx('/data/fashion-mnist', { split: 'test' })
   * const { image, shape, label } = await test.get(0)   // shape [1, 28, 28], values in [0, 1]
   * ```
   */
  constructor(root: string, opts: FolderOptions = {}) {
    super('Idx', 'idx', root, opts)
  }
}
