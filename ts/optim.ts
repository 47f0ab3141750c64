// Optimizer, schedule and loss specs (JSON for the engine; see crates/core/src/optim).
import { argError } from './errors'

export type OptimizerSpec =
  | { type: 'sgd'; lr: number; momentum: number; dampening: number; nesterov: boolean; weightDecay: number }
  | { type: 'adam'; lr: number; betas: [number, number]; eps: number; weightDecay: number }
  | { type: 'adamW'; lr: number; betas: [number, number]; eps: number; weightDecay: number }

export type ScheduleSpec =
  | { type: 'constant'; warmupSteps?: number }
  | { type: 'cosine'; totalSteps: number; minLr?: number; warmupSteps?: number }
  | { type: 'step'; stepSize: number; gamma: number; warmupSteps?: number }

export type LossSpec =
  | { type: 'crossEntropy'; headWeights?: [number, number]; labelSmoothing?: number }
  | { type: 'mseFiringRate'; headWeights?: [number, number] }

/** The largest finite 32-bit float: the engine computes in f32, larger values become Infinity. */
const F32_MAX = 3.4028234663852886e38

/** A finite number in [min, max] (above min when `exclusive`), naming `<optimizer> <field>`. */
function num(name: string, field: string, v: unknown, min: number, max: number, exclusive = false): number {
  const ok = typeof v === 'number' && Number.isFinite(v) && (exclusive ? v > min : v >= min) && v <= max
  if (!ok) {
    const range =
      max === F32_MAX
        ? `a finite number ${exclusive ? '>' : '>='} ${min} that fits a 32-bit float (at most 3.4e38)`
        : `a finite number in ${exclusive ? '(' : '['}${min}, ${max}${max === 1 ? ')' : ']'}`
    throw argError(`${name} ${field}`, range, v)
  }
  return v as number
}

function lr(name: string, v: unknown): number {
  return num(name, 'lr', v, 0, F32_MAX, true)
}

function flag(name: string, field: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw argError(`${name} ${field}`, 'true or false', v)
  return v
}

function betas(name: string, v: unknown): [number, number] {
  if (!Array.isArray(v) || v.length !== 2) throw argError(`${name} betas`, 'a pair [beta1, beta2] in [0, 1)', v)
  const b = [num(name, 'betas[0]', v[0], 0, 1), num(name, 'betas[1]', v[1], 0, 1)] as [number, number]
  if (b[0] >= 1 || b[1] >= 1) throw argError(`${name} betas`, 'a pair [beta1, beta2] in [0, 1)', b[b[0] >= 1 ? 0 : 1])
  return b
}

/**
 * Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay
 * (PyTorch's `SGD` update).
 *
 * @example
 * ```ts
 * await model.fit(train, { epochs: 4, batchSize: 64, optimizer: sgd({ lr: 0.1, momentum: 0.9 }), schedule: 'cosine' })
 * ```
 */
export function sgd(o: {
  lr: number
  momentum?: number
  dampening?: number
  nesterov?: boolean
  weightDecay?: number
}): OptimizerSpec {
  return {
    type: 'sgd',
    lr: lr('sgd', o.lr),
    momentum: num('sgd', 'momentum', o.momentum ?? 0, 0, F32_MAX),
    dampening: num('sgd', 'dampening', o.dampening ?? 0, 0, F32_MAX),
    nesterov: flag('sgd', 'nesterov', o.nesterov ?? false),
    weightDecay: num('sgd', 'weightDecay', o.weightDecay ?? 0, 0, F32_MAX),
  }
}

/**
 * Adam (betas 0.9 / 0.999, eps 1e-8 by default; `weightDecay` adds an L2 term to the gradient).
 *
 * @example
 * ```ts
 * await model.fit(train, { epochs: 4, batchSize: 64, optimizer: adam({ lr: 2e-3 }), schedule: 'cosine' })
 * ```
 */
export function adam(o: AdamOptions): OptimizerSpec {
  return adamFamily('adam', o, 0)
}

/** AdamW: Adam with decoupled weight decay (default 0.01). */
export function adamW(o: AdamOptions): OptimizerSpec {
  return adamFamily('adamW', o, 0.01)
}

type AdamOptions = { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number }

function adamFamily(type: 'adam' | 'adamW', o: AdamOptions, weightDecay: number): OptimizerSpec {
  return {
    type,
    lr: lr(type, o.lr),
    betas: betas(type, o.betas ?? [0.9, 0.999]),
    eps: num(type, 'eps', o.eps ?? 1e-8, 0, F32_MAX, true),
    weightDecay: num(type, 'weightDecay', o.weightDecay ?? weightDecay, 0, F32_MAX),
  }
}

/**
 * Learning-rate schedules, in optimizer steps (batches). `fit` can fill `totalSteps` from epochs
 * (`schedule: 'cosine'`); every schedule takes an optional linear warm-up.
 *
 * @example
 * ```ts
 * model.configureTraining(adam({ lr: 1e-3 }), schedules.cosine({ totalSteps: 64 * 73, warmupSteps: 100 }))
 * ```
 */
export const schedules = {
  /** The optimizer's learning rate throughout (after the warm-up). */
  constant: (o: { warmupSteps?: number } = {}): ScheduleSpec => ({ type: 'constant', ...o }),
  /** Cosine annealing from the optimizer's rate down to `minLr` (default 0) over `totalSteps`. */
  cosine: (o: { totalSteps: number; minLr?: number; warmupSteps?: number }): ScheduleSpec => ({ type: 'cosine', ...o }),
  /** Multiplies the rate by `gamma` every `stepSize` steps. */
  stepDecay: (o: { stepSize: number; gamma: number; warmupSteps?: number }): ScheduleSpec => ({ type: 'step', ...o }),
}

function headWeights(o: { headWeights?: [number, number] }): { headWeights?: [number, number] } {
  if (o.headWeights === undefined) return {}
  const w = o.headWeights
  if (!Array.isArray(w) || w.length !== 2 || !w.every((v) => typeof v === 'number' && Number.isFinite(v) && v >= 0)) {
    throw argError('loss headWeights', 'a pair [spikeHead, accumulationHead] of finite numbers >= 0', w)
  }
  return { headWeights: [w[0], w[1]] }
}

/**
 * Losses on the time-mean output. For a dual-stream model the training loss is
 * `w_s * loss(y_s) + w_a * loss(y_a)` with `headWeights: [w_s, w_a]` (default [1, 1]).
 */
export const losses = {
  /**
   * Cross-entropy on the time-mean output (the default). `labelSmoothing` eps in [0, 1) aims
   * at `1 - eps` on the label plus `eps / K` on every class, as PyTorch's `label_smoothing`.
   */
  crossEntropy: (o: { headWeights?: [number, number]; labelSmoothing?: number } = {}): LossSpec => {
    const eps = o.labelSmoothing
    if (eps !== undefined && !(typeof eps === 'number' && eps >= 0 && eps < 1))
      throw argError('loss labelSmoothing', 'a number in [0, 1)', eps)
    return { type: 'crossEntropy', ...headWeights(o), ...(eps ? { labelSmoothing: eps } : {}) }
  },
  /** Mean squared error between the output firing rates and the one-hot target. */
  mseFiringRate: (o: { headWeights?: [number, number] } = {}): LossSpec => ({
    type: 'mseFiringRate',
    ...headWeights(o),
  }),
}
