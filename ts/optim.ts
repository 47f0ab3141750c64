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

export function adam(o: { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number }): OptimizerSpec {
  return {
    type: 'adam',
    lr: lr('adam', o.lr),
    betas: o.betas ?? [0.9, 0.999],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0,
  }
}

export function adamW(o: { lr: number; betas?: [number, number]; eps?: number; weightDecay?: number }): OptimizerSpec {
  return {
    type: 'adamW',
    lr: lr('adamW', o.lr),
    betas: o.betas ?? [0.9, 0.999],
    eps: o.eps ?? 1e-8,
    weightDecay: o.weightDecay ?? 0.01,
  }
}

/** Schedules are given in optimizer steps (batches). `fit` can fill `totalSteps` from epochs. */
export const schedules = {
  constant: (o: { warmupSteps?: number } = {}): ScheduleSpec => ({ type: 'constant', ...o }),
  cosine: (o: { totalSteps: number; minLr?: number; warmupSteps?: number }): ScheduleSpec => ({ type: 'cosine', ...o }),
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
  crossEntropy: (o: { headWeights?: [number, number] } = {}): LossSpec => ({ type: 'crossEntropy', ...headWeights(o) }),
  mseFiringRate: (o: { headWeights?: [number, number] } = {}): LossSpec => ({
    type: 'mseFiringRate',
    ...headWeights(o),
  }),
}
