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

export type LossSpec = { type: 'crossEntropy' | 'mseFiringRate'; headWeights?: [number, number] }

function lr(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) throw argError(`${name} lr`, 'a finite number > 0', v)
  return v
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
    momentum: o.momentum ?? 0,
    dampening: o.dampening ?? 0,
    nesterov: o.nesterov ?? false,
    weightDecay: o.weightDecay ?? 0,
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
export function adam(o: { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number }): OptimizerSpec {
  return {
    type: 'adam',
    lr: lr('adam', o.lr),
    betas: o.betas ?? [0.9, 0.999],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0,
  }
}

/** AdamW: Adam with decoupled weight decay (default 0.01). */
export function adamW(o: { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number }): OptimizerSpec {
  return {
    type: 'adamW',
    lr: lr('adamW', o.lr),
    betas: o.betas ?? [0.9, 0.999],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.01,
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
  /** Cross-entropy on the time-mean output (the default). */
  crossEntropy: (o: { headWeights?: [number, number] } = {}): LossSpec => ({ type: 'crossEntropy', ...headWeights(o) }),
  /** Mean squared error between the output firing rates and the one-hot target. */
  mseFiringRate: (o: { headWeights?: [number, number] } = {}): LossSpec => ({
    type: 'mseFiringRate',
    ...headWeights(o),
  }),
}
