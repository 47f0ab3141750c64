// The model spec: plain JSON mirroring `crates/core/src/spec.rs`. Builders in layers.ts produce
// it; it crosses into Rust once per model and is stored beside checkpoints.

export type Pair = [number, number]

export type SurrogateSpec =
  | { type: 'sigmoid'; alpha: number }
  | { type: 'atan'; alpha: number }
  | { type: 'piecewiseQuadratic'; alpha: number }
  | { type: 'superSpike'; alpha: number }

export interface NeuronParams {
  tau: number
  decayInput: boolean
  vThreshold: number
  /** `null`: soft reset (subtract the threshold). */
  vReset: number | null
  detachReset: boolean
  surrogate: SurrogateSpec
}

export type Connect = 'add' | 'and' | 'iand' | 'or' | 'xor'

export type LayerSpec =
  | {
      type: 'conv2d'
      inChannels: number
      outChannels: number
      kernelSize: Pair
      stride: Pair
      padding: Pair
      dilation: Pair
      groups: number
      bias: boolean
    }
  | { type: 'linear'; inFeatures: number; outFeatures: number; bias: boolean }
  | { type: 'batchNorm2d'; numFeatures: number; eps: number; momentum: number; initWeight: number }
  | { type: 'maxPool2d' | 'avgPool2d'; kernelSize: Pair; stride: Pair; padding: Pair }
  | { type: 'globalAvgPool' }
  | { type: 'flatten' }
  | { type: 'dropout'; p: number }
  | ({ type: 'if' | 'lif' | 'plif' } & NeuronParams)
  | { type: 'sewBlock'; branch: LayerSpec[]; shortcut: LayerSpec[] | null; connect: Connect }

export type Encoding = 'direct' | 'sequence'

export interface ModelSpec {
  timeSteps: number
  /** One sample's shape without T and N, e.g. [1, 28, 28]. */
  inputShape: number[]
  encoding: Encoding
  layers: LayerSpec[]
}
