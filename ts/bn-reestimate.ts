// BatchNorm running statistics re-estimated for a model's current weights as a cumulative
// average over training batches: PyTorch's momentum=None, as torch.optim.swa_utils.update_bn
// does after weight averaging. A weight average (fit's ema) keeps the statistics of the trained
// weights, which do not match the averaged ones.
import { argError } from './errors'
import type { LabelledData } from './model'
import { Model } from './model'
import { adam } from './optim'
import type { LayerSpec } from './spec'

export interface ReestimateOptions {
  /** Training batches to average over (default: all of them). */
  batches?: number
  /** Samples per batch (default 64). */
  batchSize?: number
  /** Seed of the batch order (default 0). */
  seed?: number
}

const BATCH_NORMS = new Set(['batchNorm2d', 'batchNorm1d'])

/** The same layers with every batch norm's momentum 1: its running statistics after a training
 * forward are then exactly that batch's (mean and unbiased variance), with no earlier share. */
function momentumOne(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(momentumOne)
  if (value === null || typeof value !== 'object') return value
  const o = value as Record<string, unknown>
  const bn = typeof o.type === 'string' && BATCH_NORMS.has(o.type)
  return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, bn && k === 'momentum' ? 1 : momentumOne(v)]))
}

const isStatistic = (name: string) => name.endsWith('running_mean') || name.endsWith('running_var')

/**
 * A copy of `model` (same weights) whose BN running statistics are the mean, over `batches`
 * training batches of `data`, of each batch's statistics as a training forward computes them
 * (every time step, sample and position together): PyTorch's cumulative average
 * (`momentum=None`). The batch statistics come from the engine's own training forward in a
 * copy with momentum 1, so they are those training would have used; no weight changes.
 *
 * @example
 * ```ts
 * const calibrated = await reestimateBatchNorm(model, train, { batches: 200 })
 * console.log((await calibrated.evaluate(test)).accuracy)
 * ```
 */
export async function reestimateBatchNorm(
  model: Model,
  data: LabelledData,
  options: ReestimateOptions = {},
): Promise<Model> {
  const { batches = Number.POSITIVE_INFINITY, batchSize = 64, seed = 0 } = options
  if (!(batches >= 1)) throw argError('reestimateBatchNorm batches', 'a number >= 1', batches)
  if (!Number.isInteger(batchSize) || batchSize < 1)
    throw argError('reestimateBatchNorm batchSize', 'a positive integer', batchSize)
  const spec = model.spec
  const tensors = model.stateTensors()
  const checkpoint = { path: 'reestimateBatchNorm', seed: model.seed, trainer: [], metadata: {} }
  const probe = Model.fromCheckpoint({
    ...checkpoint,
    spec: { ...spec, layers: momentumOne(spec.layers) as LayerSpec[] },
    tensors,
  })
  const sums = new Map<string, Float64Array>()
  let seen = 0
  try {
    // A loss for the training forward; gradientNorms never steps the optimizer.
    probe.configureTraining(adam({ lr: 1e-3 }))
    for await (const b of data.batches(batchSize, { shuffle: true, seed, epoch: 0, dropLast: true })) {
      if (seen >= batches) break
      await probe.gradientNorms(b.x, b.y)
      for (const t of probe.stateTensors()) {
        if (!isStatistic(t.name)) continue
        const s = sums.get(t.name) ?? new Float64Array(t.data.length)
        for (let i = 0; i < s.length; i++) s[i] += t.data[i]
        sums.set(t.name, s)
      }
      seen++
    }
  } finally {
    await probe.dispose()
  }
  if (seen === 0) throw argError('reestimateBatchNorm batchSize', `at most the ${data.length} samples`, batchSize)
  const averaged = tensors.map((t) => {
    const s = sums.get(t.name)
    return s ? { ...t, data: Float32Array.from(s, (v) => v / seen) } : t
  })
  return Model.fromCheckpoint({ ...checkpoint, spec, tensors: averaged })
}
