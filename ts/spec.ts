// The model spec: plain JSON mirroring `crates/core/src/spec.rs`. Builders in layers.ts produce
// it; it crosses into Rust once per model and is stored beside checkpoints.

export type Pair = [number, number]

export type SurrogateSpec =
  | { type: 'sigmoid'; alpha: number }
  | { type: 'atan'; alpha: number }
  | { type: 'piecewiseQuadratic'; alpha: number }
  | { type: 'superSpike'; alpha: number }
  | { type: 'erf'; alpha: number }
  | { type: 'softSign'; alpha: number }
  | { type: 'piecewiseExp'; alpha: number }
  | { type: 'piecewiseLeakyRelu'; w: number; c: number }

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
  | {
      type: 'batchNorm2d'
      numFeatures: number
      eps: number
      momentum: number
      initWeight: number
      /** Learnable weight and bias (PyTorch's `affine`); absent means true. */
      affine?: boolean
    }
  | PoolSpec
  | { type: 'globalAvgPool' }
  | { type: 'flatten' }
  | { type: 'dropout'; p: number }
  | ({ type: 'if' | 'lif' | 'plif' } & NeuronParams)
  | { type: 'sewBlock'; branch: LayerSpec[]; shortcut: LayerSpec[] | null; connect: Connect }
  | { type: 'spikingResnetBlock'; branch: LayerSpec[]; shortcut: LayerSpec[] | null; residualNeuron: NeuronParams }
  | { type: 'relu' }
  | DualStreamSpec
  /** BatchNorm1d over the channels (last axis) of tokens `[T, N, L, C]`. */
  | {
      type: 'batchNorm1d'
      numFeatures: number
      eps: number
      momentum: number
      initWeight: number
      /** Absent or true: the engine does not yet take `affine: false` for token batch norms. */
      affine?: boolean
    }
  /** `[T, N, C, H, W]` -> `[T, N, H*W, C]`: one token of C channels per position. */
  | { type: 'tokens' }
  /** `[T, N, L, C]` -> `[T, N, C]`: the mean over the tokens. */
  | { type: 'tokenMean' }
  /** Spiking self-attention's product on `[T, N, L, 3C]` (Q, K, V): per head `scale * Q K^T V`. */
  | { type: 'spikingAttention'; dim: number; heads: number; scale: number }

/** How a dual-stream block joins S and the shortcut: a spike function, or `SN_res(S + O)`. */
export type DualConnect = 'and' | 'iand' | 'or' | 'xor' | 'spikingResnet'

/** `S = branch(O)`, `O' = g(S, shortcut(O))`, `A' = projection(A) + S`. */
export interface DualStreamBlockSpec {
  type: 'block'
  branch: LayerSpec[]
  shortcut: LayerSpec[] | null
  connect: DualConnect
  /** P, the accumulation stream's shortcut; null is the identity. */
  projection: LayerSpec[] | null
  /** Residual IF neuron of the `spikingResnet` form (null otherwise). */
  residualNeuron: NeuronParams | null
}

export interface PoolSpec {
  type: 'maxPool2d' | 'avgPool2d'
  kernelSize: Pair
  stride: Pair
  padding: Pair
  /** PyTorch's `ceil_mode`; absent means false. */
  ceilMode?: boolean
  /** Average pooling only (PyTorch's `count_include_pad`); absent means true. */
  countIncludePad?: boolean
}

export type DualStage = DualStreamBlockSpec | PoolSpec

/**
 * The dual-stream trunk and its heads; it must be a model's last layer. Output per step:
 * `[y_s | y_a]` (2K values) with the accumulation pathway, `y_s` (K) when `aap` is false.
 */
export interface DualStreamSpec {
  type: 'dualStream'
  stages: DualStage[]
  /** The FC shared by both heads. */
  head: { inFeatures: number; outFeatures: number; bias: boolean }
  aap: boolean
  /**
   * 'gap' (default, the paper's heads), 'flatten' (inFeatures = C*H*W, for small inputs) or
   * 'tokens' (the mean over the tokens of `[T, N, L, C]` streams, inFeatures = C).
   */
  headPool?: 'gap' | 'flatten' | 'tokens'
}

export type Encoding = 'direct' | 'sequence'

export interface ModelSpec {
  timeSteps: number
  /** One sample's shape without T and N, e.g. [1, 28, 28]. */
  inputShape: number[]
  encoding: Encoding
  layers: LayerSpec[]
}
