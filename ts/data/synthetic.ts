// Synthetic neuromorphic data: static grey images turned into event streams the way N-MNIST was
// recorded (three saccades in a triangle, ~100 ms each, a DVS pixel model emitting ON/OFF events
// on log-intensity changes of `threshold`; crates/data/src/synthetic.rs documents the model).
import { argError, fromNative } from '../errors'

import native = require('../native')

import type { TensorDataset } from './dataset'
import { FASHION_MNIST_CLASSES, loadFashionMnist } from './fashion-mnist'
import type { Events } from './frames'
import type { EventSample, IndexedDataset } from './loader'

export interface SyntheticOptions {
  /** Contrast threshold in log intensity, both polarities. Default 0.25. */
  threshold?: number
  /** Offset of the logarithm, ln(I + eps). Default 0.1. */
  eps?: number
  /** Render step of the moving image, microseconds. Default 1000. */
  stepUs?: number
  /** Sensor pixels around the image on each side (N-MNIST: 3, 28 -> 34). Default 3. */
  margin?: number
  /** Duration of each of the three saccades, microseconds. Default 100,000. */
  saccadeUs?: number
}

/** Checks synthetic-event options and returns their JSON for the engine. */
export function syntheticOptionsJson(options: SyntheticOptions = {}): string {
  if (typeof options !== 'object' || options === null) throw argError('synthetic options', 'an options object', options)
  const out: Record<string, number> = {}
  const positive = (k: keyof SyntheticOptions, integer: boolean) => {
    const v = options[k]
    if (v === undefined) return
    if (typeof v !== 'number' || !(v > 0) || !Number.isFinite(v) || (integer && !Number.isInteger(v))) {
      throw argError(`synthetic ${k}`, integer ? 'a positive integer' : 'a positive number', v)
    }
    out[k] = v
  }
  positive('threshold', false)
  positive('eps', false)
  positive('stepUs', true)
  positive('saccadeUs', true)
  if (options.margin !== undefined) {
    if (!Number.isInteger(options.margin) || options.margin < 0)
      throw argError('synthetic margin', 'a non-negative integer', options.margin)
    out.margin = options.margin
  }
  return JSON.stringify(out)
}

/** Events of a grey image (`height x width`, values in [0, 1]) on a sensor `2 margin` larger. */
export async function syntheticEvents(
  image: Float32Array,
  height: number,
  width: number,
  options: SyntheticOptions = {},
): Promise<Events> {
  if (!(image instanceof Float32Array)) throw argError('syntheticEvents image', 'a Float32Array', image)
  if (!Number.isInteger(height) || height < 1) throw argError('syntheticEvents height', 'a positive integer', height)
  if (!Number.isInteger(width) || width < 1) throw argError('syntheticEvents width', 'a positive integer', width)
  const json = syntheticOptionsJson(options)
  try {
    return await native.syntheticEvents(image, height, width, json)
  } catch (e) {
    throw fromNative(e)
  }
}

/**
 * "N-Fashion-MNIST": Fashion-MNIST images recorded by the synthetic event camera, 34 x 34
 * sensor, 10 classes. `get(i)` resolves to `{ events, label }` like any event dataset, so it
 * plugs into `DataLoader` with a frames spec; events are made on the libuv pool on demand.
 */
export class NFashionMnist implements IndexedDataset {
  readonly length: number
  readonly numClasses = 10
  readonly classNames = FASHION_MNIST_CLASSES
  readonly images: TensorDataset
  readonly options: SyntheticOptions
  readonly width: number
  readonly height: number
  private readonly json: string

  /** From a Fashion-MNIST split (samples `[1, 28, 28]`, e.g. `loadFashionMnist().train`). */
  constructor(images: TensorDataset, options: SyntheticOptions = {}) {
    if (images?.sampleShape?.length !== 3 || images.sampleShape[0] !== 1) {
      throw argError('NFashionMnist images', 'a grey image data set with samples [1, H, W]', images)
    }
    this.json = syntheticOptionsJson(options)
    this.images = images
    this.options = { ...options }
    this.length = images.length
    const margin = options.margin ?? 3
    this.height = images.sampleShape[1] + 2 * margin
    this.width = images.sampleShape[2] + 2 * margin
  }

  /** Loads Fashion-MNIST (from the installed package) and wraps its `split`. */
  static load(
    options: { split?: 'train' | 'test'; limitPerClass?: number; synthetic?: SyntheticOptions } = {},
  ): NFashionMnist {
    const split = options.split ?? 'train'
    if (split !== 'train' && split !== 'test') throw argError('NFashionMnist split', '"train" or "test"', split)
    const fm = loadFashionMnist({ limitPerClass: options.limitPerClass })
    return new NFashionMnist(split === 'train' ? fm.train : fm.test, options.synthetic)
  }

  /** The synthetic recording of image `index` and its label, made on the libuv pool. */
  async get(index: number): Promise<EventSample> {
    const { x, y } = this.images.get(index)
    const [, h, w] = this.images.sampleShape
    try {
      return { events: await native.syntheticEvents(x, h, w, this.json), label: y }
    } catch (e) {
      throw fromNative(e)
    }
  }
}
