// Spikformer (a spiking vision transformer) as layer specs: the spiking patch splitting stem
// (SPS), spiking self-attention (SSA) and MLP sub-blocks, and the zoo network with ADD, spike
// (IAND, ...) or dual-stream residuals. The layers follow SpikingJelly's
// `activation_based.model.spikformer`, which the engine reproduces (see docs/transformers.md).
import { argError } from './errors'
import {
  batchNorm1d,
  batchNorm2d,
  conv2d,
  dualStream,
  dualStreamBlock,
  lif,
  linear,
  maxPool2d,
  sewBlock,
  spikingAttention,
  surrogate,
  tokenMean,
  tokens,
} from './layers'
import type { Connect, DualConnect, LayerSpec } from './spec'
import type { ZooNet } from './zoo'

/** Spikformer's neuron: LIF, tau 2, hard reset to 0, detached reset, sigmoid surrogate (alpha 4). */
export const spikformerNeuron = (vThreshold = 1): LayerSpec =>
  lif({ tau: 2, vThreshold, detachReset: true, surrogate: surrogate.sigmoid(4) })

/**
 * Spiking self-attention on tokens `[T, N, L, dim]`: Q, K and V = LIF(BN(linear)) (one
 * `linear(dim, 3 dim)`, the three side by side), per head `0.125 * Q K^T V` (no softmax), the
 * attention LIF (V_th 0.5), then the projection LIF(BN(linear)).
 */
export function spikingSelfAttention(dim: number, heads: number, neuron = spikformerNeuron): LayerSpec[] {
  return [
    linear(dim, 3 * dim, { bias: false }),
    batchNorm1d(3 * dim),
    neuron(1),
    spikingAttention(dim, heads),
    neuron(0.5),
    linear(dim, dim, { bias: false }),
    batchNorm1d(dim),
    neuron(1),
  ]
}

/** The spiking MLP on tokens: LIF(BN(linear(dim, hidden))), then LIF(BN(linear(hidden, dim))). */
export function spikingMlp(dim: number, hidden: number, neuron = spikformerNeuron): LayerSpec[] {
  return [
    linear(dim, hidden, { bias: false }),
    batchNorm1d(hidden),
    neuron(1),
    linear(hidden, dim, { bias: false }),
    batchNorm1d(dim),
    neuron(1),
  ]
}

/**
 * Spiking patch splitting: four conv3x3-BN(-maxpool 3/2/1)-LIF stages to dim/8, dim/4, dim/2 and
 * dim channels (patch 4: the last two pool; patch 16: all four), the relative position
 * conv3x3-BN-LIF joined to its input by `connect`, then the tokens `[T, N, H*W, dim]`.
 */
export function spikingPatchSplitting(
  inChannels: number,
  dim: number,
  patch: 4 | 16,
  connect: Connect,
  neuron = spikformerNeuron,
): LayerSpec[] {
  const layers: LayerSpec[] = []
  let c = inChannels
  const poolFrom = patch === 4 ? 2 : 0
  ;[dim / 8, dim / 4, dim / 2, dim].forEach((out, i) => {
    layers.push(conv2d(c, out, 3, { padding: 1, bias: false }), batchNorm2d(out))
    if (i >= poolFrom) layers.push(maxPool2d(3, { stride: 2, padding: 1 }))
    layers.push(neuron(1))
    c = out
  })
  const rpe = [conv2d(dim, dim, 3, { padding: 1, bias: false }), batchNorm2d(dim), neuron(1)]
  layers.push(sewBlock({ branch: rpe, connect }), tokens())
  return layers
}

export interface SpikformerOptions {
  /** Default [3, 32, 32] (CIFAR). */
  inputShape?: number[]
  /** Default 10. */
  classes?: number
  /** Default 4. */
  timeSteps?: number
  /** Transformer blocks; default 4 (Spikformer-4-384). */
  depth?: number
  /** Embedding channels, a multiple of 8; default 384. */
  dim?: number
  /** Attention heads, dividing dim; default 12. */
  heads?: number
  /** MLP hidden channels over dim; default 4. */
  mlpRatio?: number
  /** 4 (default: 2 poolings, CIFAR-size inputs) or 16 (4 poolings, ImageNet-size inputs). */
  patch?: 4 | 16
  /**
   * The residual joins (SPS, attention, MLP): 'add' (default without dst: the original,
   * mixed-precision network) or a spike join ('iand', 'and', 'or', 'xor': full-spike).
   */
  connect?: Connect
  /** Dual-stream training: the accumulation pathway A_l = A_{l-1} + S_l over the sub-blocks and
   * two heads on one FC. Needs a spike join (default 'iand'). Default false. */
  dst?: boolean
}

const KEYS = ['inputShape', 'classes', 'timeSteps', 'depth', 'dim', 'heads', 'mlpRatio', 'patch', 'connect', 'dst']
const CONNECTS: Connect[] = ['add', 'and', 'iand', 'or', 'xor']

function posInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw argError(name, 'a positive integer', v)
  return v
}

/**
 * Spikformer (Zhou et al.), by default Spikformer-4-384 for 32x32 RGB inputs as in the paper's
 * spike transformer experiment: `connect: 'add'` is the original, `'iand'` its full-spike form,
 * and `dst: true` adds the auxiliary accumulation pathway (fsnn evaluation and `toFullSpike()`
 * drop it).
 *
 * @example
 * ```ts
 * spikformer()                                              // Spikformer-4-384, ADD
 * spikformer({ connect: 'iand', dst: true })                // IAND + DST
 * spikformer({ inputShape: [1, 28, 28], depth: 2, dim: 64, heads: 4, connect: 'iand' })
 * ```
 */
export function spikformer(options: SpikformerOptions = {}): ZooNet {
  const fn = 'spikformer'
  if (options === null || typeof options !== 'object') throw argError(`${fn} options`, 'an object', options)
  for (const k of Object.keys(options)) {
    if (!KEYS.includes(k)) throw argError(`${fn} options`, `only the keys ${KEYS.join(', ')}`, k)
  }
  const shape = options.inputShape ?? [3, 32, 32]
  if (!Array.isArray(shape) || shape.length !== 3) throw argError(`${fn} inputShape`, '[C, H, W]', shape)
  const [inChannels, h, w] = shape.map((v, i) => posInt(`${fn} inputShape[${i}]`, v))
  const classes = posInt(`${fn} classes`, options.classes ?? 10)
  const timeSteps = posInt(`${fn} timeSteps`, options.timeSteps ?? 4)
  const depth = posInt(`${fn} depth`, options.depth ?? 4)
  const dim = posInt(`${fn} dim`, options.dim ?? 384)
  if (dim % 8 !== 0) throw argError(`${fn} dim`, 'a multiple of 8 (the SPS stages have dim/8 ... dim channels)', dim)
  const heads = posInt(`${fn} heads`, options.heads ?? 12)
  if (dim % heads !== 0) throw argError(`${fn} heads`, `a divisor of dim ${dim}`, heads)
  const mlpRatio = options.mlpRatio ?? 4
  const hidden = Math.floor(dim * mlpRatio)
  if (!Number.isFinite(mlpRatio) || hidden < 1) throw argError(`${fn} mlpRatio`, 'a positive number', mlpRatio)
  const patch = options.patch ?? 4
  if (patch !== 4 && patch !== 16) throw argError(`${fn} patch`, '4 or 16', patch)
  const dst = options.dst ?? false
  if (typeof dst !== 'boolean') throw argError(`${fn} dst`, 'a boolean', dst)
  const connect = options.connect ?? (dst ? 'iand' : 'add')
  if (!CONNECTS.includes(connect)) throw argError(`${fn} connect`, `one of ${CONNECTS.join(', ')}`, connect)
  if (dst && connect === 'add') {
    throw argError(`${fn} connect`, 'a spike join with dst ("add" breaks the full-spike stream)', connect)
  }
  // Each max pooling (3, stride 2, padding 1) halves a side, rounding up.
  const pools = patch === 4 ? 2 : 4
  const side = (s: number) => Array.from({ length: pools }).reduce<number>((a) => Math.ceil(a / 2), s)
  if (side(h) < 1 || side(w) < 1) throw argError(`${fn} inputShape`, 'a larger image', shape)

  const layers = spikingPatchSplitting(inChannels, dim, patch, connect)
  const ssa = () => spikingSelfAttention(dim, heads)
  const mlp = () => spikingMlp(dim, hidden)
  if (dst) {
    const join = connect as DualConnect
    const stages = []
    for (let i = 0; i < depth; i++) {
      stages.push(dualStreamBlock({ branch: ssa(), connect: join }), dualStreamBlock({ branch: mlp(), connect: join }))
    }
    layers.push(dualStream({ stages, classes, features: dim, headPool: 'tokens' }))
  } else {
    for (let i = 0; i < depth; i++) {
      layers.push(sewBlock({ branch: ssa(), connect }), sewBlock({ branch: mlp(), connect }))
    }
    layers.push(tokenMean(), linear(dim, classes))
  }
  return {
    name: `spikformer-${depth}-${dim}-${connect}${dst ? '-dst' : ''}`,
    layers,
    timeSteps,
    inputShape: [inChannels, h, w],
    encoding: 'direct',
    classes,
    blocks: depth,
  }
}
