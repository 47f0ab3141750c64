// Class-per-folder image datasets (ImageNet's train/<class>/*.JPEG, val/<class>/*): listed in
// torchvision's ImageFolder order so label indices agree with models trained in PyTorch, and
// decoded (JPEG/PNG, in Rust) only when a batch is prepared.
import { argError, fromNative } from '../errors'

import native = require('../native')

import type { NativeImageFolder } from '../../native'
import type { Split } from './datasets'
import type { EncoderSpec } from './encoders'
import { type FileSample, type IndexedDataset, LoaderData } from './loader'
import { type TransformSpec, transforms } from './transforms'

/** ImageNet's per-channel statistics (RGB), what torchvision's pretrained models expect. */
export const IMAGENET_MEAN: readonly number[] = Object.freeze([0.485, 0.456, 0.406])
export const IMAGENET_STD: readonly number[] = Object.freeze([0.229, 0.224, 0.225])

export interface ImageTransformOptions {
  /** Side of the square output. Default 224. */
  size?: number
  /** Normalisation; default ImageNet's. */
  mean?: readonly number[]
  std?: readonly number[]
}

/** The standard ImageNet transforms, as torchvision's reference scripts compose them on PIL images. */
export const imageTransforms = {
  /**
   * Evaluation: Resize(resize) on the shorter side (antialiased bilinear), CenterCrop(size),
   * to [0, 1], Normalize. `resize` defaults to round(size * 256 / 224), 256 for 224.
   */
  evaluation(options: ImageTransformOptions & { resize?: number } = {}): TransformSpec[] {
    const size = options.size ?? 224
    const resize = options.resize ?? Math.round((size * 256) / 224)
    return [
      transforms.resize(resize),
      transforms.centerCrop(size),
      transforms.normalize([...(options.mean ?? IMAGENET_MEAN)], [...(options.std ?? IMAGENET_STD)]),
    ]
  },
  /**
   * Training: RandomResizedCrop(size, scale, ratio) drawn as torchvision draws it, resized
   * with Pillow's filter; RandomHorizontalFlip(flip); to [0, 1]; Normalize.
   */
  training(
    options: ImageTransformOptions & { scale?: [number, number]; ratio?: [number, number]; flip?: number } = {},
  ): TransformSpec[] {
    const size = options.size ?? 224
    return [
      transforms.randomResizedCrop(size, {
        scale: options.scale ?? [0.08, 1],
        ratio: options.ratio ?? [3 / 4, 4 / 3],
        antialias: true,
      }),
      transforms.horizontalFlip(options.flip ?? 0.5),
      transforms.normalize([...(options.mean ?? IMAGENET_MEAN)], [...(options.std ?? IMAGENET_STD)]),
    ]
  },
}

export interface ImageFolderOptions {
  /** 'train' reads `root/train`; 'test' reads `root/val` (else `root/test`). Default 'train'. */
  split?: Split
}

export interface ImageFolderDataOptions extends ImageTransformOptions {
  /** Default: the training transform for the 'train' split, else the evaluation one. */
  transforms?: TransformSpec[]
  /** Repeat each image over T steps (a `[T, N, 3, H, W]` batch); default none: the model's
   * direct encoding feeds the static image at every step. */
  encoder?: EncoderSpec
  /** Batches prepared ahead while one trains. Default 2. */
  prefetch?: number
}

/**
 * An ImageNet-style folder: `root/train/<class>/*` and `root/val/<class>/*` (JPEG or PNG, any
 * size; grey, CMYK, 16-bit and palette images become RGB as torchvision's loader makes them).
 * Classes are the folder names sorted by code point; files are listed recursively in
 * torchvision's order. Opening lists files only; `get(i)` returns the file, and the batch
 * pipeline decodes it. `data()` gives what `Model.fit` / `evaluate` take.
 */
export class ImageFolder implements IndexedDataset {
  readonly length: number
  readonly labels: Uint32Array
  readonly classNames: readonly string[]
  readonly numClasses: number
  readonly split: Split
  /** The split's folder (`root/train`, `root/val`, ...). */
  readonly folder: string
  readonly #native: NativeImageFolder

  constructor(root: string, opts: ImageFolderOptions = {}) {
    if (typeof root !== 'string' || root.length === 0)
      throw argError('new ImageFolder(root)', 'a folder path string', root)
    if (typeof opts !== 'object' || opts === null)
      throw argError('new ImageFolder(root, opts)', 'an options object', opts)
    const split = opts.split ?? 'train'
    if (split !== 'train' && split !== 'test')
      throw argError('new ImageFolder(root, opts.split)', "'train' or 'test'", split)
    this.split = split
    try {
      this.#native = native.NativeImageFolder.open(root, split)
    } catch (e) {
      throw fromNative(e)
    }
    this.length = this.#native.length
    this.folder = this.#native.folder
    this.labels = Uint32Array.from(this.#native.labels())
    this.classNames = Object.freeze(this.#native.classNames())
    this.numClasses = this.classNames.length
  }

  get(index: number): FileSample {
    if (!Number.isInteger(index) || index < 0 || index >= this.length)
      throw argError('ImageFolder.get(index)', `an integer in 0..${this.length - 1}`, index)
    return { file: this.#native.path(index), label: this.labels[index] }
  }

  /** The labelled data `Model.fit` / `evaluate` / `energy` read, batches `[N, 3, size, size]`. */
  data(options: ImageFolderDataOptions = {}): LoaderData {
    const size = options.size ?? 224
    const chosen =
      options.transforms ??
      (this.split === 'train' ? imageTransforms.training(options) : imageTransforms.evaluation(options))
    const last = [...chosen].reverse().find((t) => t.kind !== 'normalize' && t.kind !== 'horizontalFlip')
    const out = last && 'size' in last && Array.isArray(last.size) ? last.size : [size, size]
    const steps = options.encoder?.timeSteps
    return new LoaderData(this, {
      pipeline: { transforms: chosen, encoder: options.encoder },
      sampleShape: steps ? [steps, 3, out[0], out[1]] : [3, out[0], out[1]],
      numClasses: this.numClasses,
      timeMajor: steps !== undefined,
      prefetch: options.prefetch,
    })
  }
}
