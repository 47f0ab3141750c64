// Small learnable image tasks shared by the training tests: seeded, so every run sees the
// same pixels.
import type { LabelledData } from '../ts/index'

/**
 * `n` images of `sampleShape` with labels `i % classes`; pixel `p` of an image with label
 * `label` is `value(label, p, r)`, `r` drawn uniformly in [0, 1) from a generator seeded by `seed`.
 */
export interface SyntheticTask {
  n: number
  sampleShape: [number, number, number]
  classes: number
  seed: number
  value: (label: number, p: number, r: number) => number
}

export function syntheticImages(task: SyntheticTask): { x: Float32Array; y: Uint32Array } {
  const { n, sampleShape, classes, value } = task
  let s = task.seed
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
  const size = sampleShape[0] * sampleShape[1] * sampleShape[2]
  const x = new Float32Array(n * size)
  const y = new Uint32Array(n)
  for (let i = 0; i < n; i++) {
    y[i] = i % classes
    for (let p = 0; p < size; p++) x[i * size + p] = value(y[i], p, rand())
  }
  return { x, y }
}

/** `syntheticImages` as in-memory `LabelledData`, batched in order. */
export function syntheticData(task: SyntheticTask): LabelledData & { x: Float32Array; y: Uint32Array } {
  const { x, y } = syntheticImages(task)
  const { n } = task
  const size = x.length / n
  return {
    x,
    y,
    length: n,
    sampleShape: task.sampleShape,
    numClasses: task.classes,
    *batches(batchSize: number) {
      for (let i = 0; i + batchSize <= n; i += batchSize) {
        yield { x: x.slice(i * size, (i + batchSize) * size), y: y.slice(i, i + batchSize), size: batchSize }
      }
    },
  }
}
