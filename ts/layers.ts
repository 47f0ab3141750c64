// Builders: typed functions that return validated layer specs. They do no numeric work.
import { argError } from './errors'
import type {
  Connect,
  DualConnect,
  DualStage,
  DualStreamBlockSpec,
  LayerSpec,
  NeuronParams,
  Pair,
  SurrogateSpec,
} from './spec'

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw argError(name, 'a positive integer', v)
  return v
}

/** Kernel sizes, strides, paddings and dilations above this are refused (as the engine does,
 * `MAX_WINDOW` in crates/core/src/spec.rs): no image or sensor comes close. */
const MAX_WINDOW = 65536

function windowInt(min: number): (name: string, v: unknown) => number {
  return (name, v) => {
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > MAX_WINDOW)
      throw argError(name, `an integer in [${min}, ${MAX_WINDOW}]`, v)
    return v
  }
}

function pair(name: string, v: unknown, check: (n: string, x: unknown) => number): Pair {
  if (Array.isArray(v)) {
    if (v.length !== 2) throw argError(name, 'a number or a pair [h, w]', v)
    return [check(`${name}[0]`, v[0]), check(`${name}[1]`, v[1])]
  }
  const x = check(name, v)
  return [x, x]
}

/** An optional boolean option: `fallback` when absent. */
function flag(name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback
  if (typeof v !== 'boolean') throw argError(name, 'true or false', v)
  return v
}

function finite(name: string, v: unknown, min = -Infinity, minExclusive = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (minExclusive && v === min)) {
    throw argError(
      name,
      minExclusive ? `a finite number > ${min}` : min > -Infinity ? `a finite number >= ${min}` : 'a finite number',
      v,
    )
  }
  return v
}

export interface Conv2dOptions {
  stride?: number | Pair
  padding?: number | Pair
  dilation?: number | Pair
  groups?: number
  /** Default true, as in PyTorch. */
  bias?: boolean
}

/**
 * A 2-D convolution over `[C, H, W]` maps (PyTorch's `Conv2d` semantics). Where its input holds
 * only spikes the engine runs it event-driven (an accumulation per active input).
 *
 * @example
 * ```ts
 * conv2d(1, 32, 3, { padding: 1, bias: false })      // 3x3, same size
 * conv2d(64, 64, 3, { stride: 2, padding: 1, groups: 64 }) // depthwise, halves H and W
 * ```
 */
export function conv2d(
  inChannels: number,
  outChannels: number,
  kernelSize: number | Pair,
  options: Conv2dOptions = {},
): LayerSpec {
  const groups = positiveInt('conv2d groups', options.groups ?? 1)
  positiveInt('conv2d inChannels', inChannels)
  positiveInt('conv2d outChannels', outChannels)
  if (inChannels % groups !== 0 || outChannels % groups !== 0) {
    throw argError('conv2d groups', `a divisor of inChannels (${inChannels}) and outChannels (${outChannels})`, groups)
  }
  return {
    type: 'conv2d',
    inChannels,
    outChannels,
    kernelSize: pair('conv2d kernelSize', kernelSize, windowInt(1)),
    stride: pair('conv2d stride', options.stride ?? 1, windowInt(1)),
    padding: pair('conv2d padding', options.padding ?? 0, windowInt(0)),
    dilation: pair('conv2d dilation', options.dilation ?? 1, windowInt(1)),
    groups,
    bias: options.bias ?? true,
  }
}

/**
 * A fully connected layer `y = x W^T + b` over flat features (put `flatten()` before it).
 *
 * @example
 * ```ts
 * sequential([flatten(), linear(28 * 28, 10)], { timeSteps: 4, inputShape: [1, 28, 28] })
 * ```
 */
export function linear(inFeatures: number, outFeatures: number, options: { bias?: boolean } = {}): LayerSpec {
  return {
    type: 'linear',
    inFeatures: positiveInt('linear inFeatures', inFeatures),
    outFeatures: positiveInt('linear outFeatures', outFeatures),
    bias: options.bias ?? true,
  }
}

export interface BatchNormOptions {
  eps?: number
  momentum?: number
  /** Initial gamma; 0 zero-initialises a residual branch's last BN. */
  initWeight?: number
  /** Learnable weight and bias (default true); false only normalises (PyTorch's `affine=False`). */
  affine?: boolean
}

/**
 * Batch normalisation over channels (statistics over batch, time and space in training, running
 * statistics in evaluation). `initWeight: 0` zero-initialises a residual branch's last BN.
 *
 * @example
 * ```ts
 * [conv2d(32, 32, 3, { padding: 1, bias: false }), batchNorm2d(32), lif()]
 * ```
 */
export function batchNorm2d(numFeatures: number, options: BatchNormOptions = {}): LayerSpec {
  return batchNorm('batchNorm2d', numFeatures, options)
}

function batchNorm(type: 'batchNorm2d' | 'batchNorm1d', numFeatures: number, options: BatchNormOptions): LayerSpec {
  const momentum = finite(`${type} momentum`, options.momentum ?? 0.1, 0)
  if (momentum > 1) throw argError(`${type} momentum`, 'a number in [0, 1]', momentum)
  return {
    type,
    numFeatures: positiveInt(`${type} numFeatures`, numFeatures),
    eps: finite(`${type} eps`, options.eps ?? 1e-5, 0, true),
    momentum,
    initWeight: finite(`${type} initWeight`, options.initWeight ?? 1),
    ...(flag(`${type} affine`, options.affine, true) ? {} : { affine: false }),
  }
}

/** BatchNorm1d over the channels (last axis) of tokens `[T, N, L, C]`, as on SpikingJelly's `[T*N, C, L]`. */
export function batchNorm1d(numFeatures: number, options: BatchNormOptions = {}): LayerSpec {
  return batchNorm('batchNorm1d', numFeatures, options)
}

/** `[T, N, C, H, W]` -> `[T, N, H*W, C]`: each position becomes a token of C channels. */
export const tokens = (): LayerSpec => ({ type: 'tokens' })

/** `[T, N, L, C]` -> `[T, N, C]`: the mean over the tokens (before a transformer's head). */
export const tokenMean = (): LayerSpec => ({ type: 'tokenMean' })

/**
 * Spiking self-attention's product (Spikformer): input `[T, N, L, 3C]`, the channels of Q, K
 * and V side by side; per head `scale * Q K^T V` without softmax; output `[T, N, L, C]`.
 */
export function spikingAttention(dim: number, heads: number, options: { scale?: number } = {}): LayerSpec {
  const d = positiveInt('spikingAttention dim', dim)
  const h = positiveInt('spikingAttention heads', heads)
  if (d % h !== 0) throw argError('spikingAttention heads', `a divisor of dim ${d}`, h)
  return { type: 'spikingAttention', dim: d, heads: h, scale: finite('spikingAttention scale', options.scale ?? 0.125) }
}

export interface PoolOptions {
  /** Defaults to the kernel size. */
  stride?: number | Pair
  padding?: number | Pair
  /**
   * Keep a last partial window when it starts inside the input or its left padding (PyTorch's
   * `ceil_mode`); default false.
   */
  ceilMode?: boolean
}

export interface AvgPoolOptions extends PoolOptions {
  /** Whether padded positions count in a window's divisor (PyTorch's `count_include_pad`); default true. */
  countIncludePad?: boolean
}

function pool(type: 'maxPool2d' | 'avgPool2d', kernelSize: number | Pair, options: AvgPoolOptions): LayerSpec {
  const k = pair(`${type} kernelSize`, kernelSize, windowInt(1))
  return {
    type,
    kernelSize: k,
    stride: pair(`${type} stride`, options.stride ?? k, windowInt(1)),
    padding: pair(`${type} padding`, options.padding ?? 0, windowInt(0)),
    ...(flag(`${type} ceilMode`, options.ceilMode, false) ? { ceilMode: true } : {}),
    ...(flag(`${type} countIncludePad`, options.countIncludePad, true) ? {} : { countIncludePad: false }),
  }
}

/** Max pooling; the stride defaults to the kernel size (`maxPool2d(2)` halves H and W). */
export const maxPool2d = (kernelSize: number | Pair, options: PoolOptions = {}): LayerSpec =>
  pool('maxPool2d', kernelSize, options)
/** Average pooling; the stride defaults to the kernel size. */
export const avgPool2d = (kernelSize: number | Pair, options: AvgPoolOptions = {}): LayerSpec =>
  pool('avgPool2d', kernelSize, options)
/** Global average pooling: `[C, H, W]` to `[C]`. */
export const globalAvgPool = (): LayerSpec => ({ type: 'globalAvgPool' })
/** Flattens each sample's `[C, H, W]` to `[C*H*W]` (before a `linear`). */
export const flatten = (): LayerSpec => ({ type: 'flatten' })

/**
 * Dropout with probability `p` in training; one mask per sample is kept for all time steps.
 * The identity in evaluation.
 */
export function dropout(p: number): LayerSpec {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw argError('dropout p', 'a probability in [0, 1)', p)
  return { type: 'dropout', p }
}

/**
 * Surrogate gradients (derivatives of a smooth stand-in for the Heaviside step), as in
 * SpikingJelly; pass one as a neuron's `surrogate`.
 *
 * @example
 * ```ts
 * lif({ surrogate: surrogate.sigmoid(4) })
 * ```
 */
export const surrogate = {
  /** `alpha * s * (1 - s)` with `s = sigmoid(alpha x)`; default alpha 4. */
  sigmoid: (alpha = 4): SurrogateSpec => ({ type: 'sigmoid', alpha: finite('surrogate alpha', alpha, 0, true) }),
  /** `(alpha / 2) / (1 + (pi/2 * alpha * x)^2)`; default alpha 2 (the neurons' default surrogate). */
  atan: (alpha = 2): SurrogateSpec => ({ type: 'atan', alpha: finite('surrogate alpha', alpha, 0, true) }),
  /** `max(0, alpha - alpha^2 |x|)`; default alpha 1. */
  piecewiseQuadratic: (alpha = 1): SurrogateSpec => ({
    type: 'piecewiseQuadratic',
    alpha: finite('surrogate alpha', alpha, 0, true),
  }),
  /** Fast sigmoid `1 / (alpha |x| + 1)^2`; default alpha 100. */
  superSpike: (alpha = 100): SurrogateSpec => ({
    type: 'superSpike',
    alpha: finite('surrogate alpha', alpha, 0, true),
  }),
  /** SpikingJelly's Erf: `sg'(x) = alpha / sqrt(pi) exp(-(alpha x)^2)`. */
  erf: (alpha = 2): SurrogateSpec => ({ type: 'erf', alpha: finite('surrogate alpha', alpha, 0, true) }),
  /** SpikingJelly's SoftSign: `sg'(x) = alpha / (2 (1 + alpha |x|)^2)`. */
  softSign: (alpha = 2): SurrogateSpec => ({ type: 'softSign', alpha: finite('surrogate alpha', alpha, 0, true) }),
  /** SpikingJelly's PiecewiseExp: `sg'(x) = alpha / 2 exp(-alpha |x|)`. */
  piecewiseExp: (alpha = 1): SurrogateSpec => ({
    type: 'piecewiseExp',
    alpha: finite('surrogate alpha', alpha, 0, true),
  }),
  /** SpikingJelly's PiecewiseLeakyReLU: `sg'(x) = 1 / (2 w)` inside `|x| < w`, `c` outside. */
  piecewiseLeakyRelu: (w = 1, c = 0.01): SurrogateSpec => ({
    type: 'piecewiseLeakyRelu',
    w: finite('surrogate w', w, 0, true),
    c: finite('surrogate c', c, 0),
  }),
}

export interface NeuronOptions {
  /** Membrane time constant (LIF) or its initial value (PLIF). Default 2. */
  tau?: number
  decayInput?: boolean
  vThreshold?: number
  /** A number: hard reset to it (default 0). `null`: soft reset. */
  vReset?: number | null
  detachReset?: boolean
  surrogate?: SurrogateSpec
}

function neuron(type: 'if' | 'lif' | 'plif', options: NeuronOptions): LayerSpec {
  const params: NeuronParams = {
    tau: finite(`${type} tau`, options.tau ?? 2, 1, true),
    decayInput: options.decayInput ?? true,
    vThreshold: finite(`${type} vThreshold`, options.vThreshold ?? 1),
    vReset: options.vReset === null ? null : finite(`${type} vReset`, options.vReset ?? 0),
    detachReset: options.detachReset ?? true,
    surrogate: options.surrogate ?? surrogate.atan(),
  }
  return { type, ...params }
}

/**
 * Integrate-and-fire neuron (multi-step): `H_t = V_{t-1} + X_t`, fires where `H_t >= V_th`.
 *
 * @example
 * ```ts
 * ifNode()                      // V_th 1, hard reset to 0, ATan surrogate
 * ifNode({ vReset: null })      // soft reset: V_t = H_t - V_th * S_t
 * ```
 */
export const ifNode = (options: Omit<NeuronOptions, 'tau' | 'decayInput'> = {}): LayerSpec => neuron('if', options)
/**
 * Leaky integrate-and-fire neuron (multi-step, SpikingJelly's charge forms; tau 2 by default).
 *
 * @example
 * ```ts
 * lif({ tau: 2, detachReset: true, surrogate: surrogate.atan(2) })
 * ```
 */
export const lif = (options: NeuronOptions = {}): LayerSpec => neuron('lif', options)
/** Parametric LIF: the time constant is learnt (`1/tau = sigmoid(w)`). */
export const plif = (options: NeuronOptions = {}): LayerSpec => neuron('plif', options)

/**
 * SEW residual block: `O = g(branch(x), shortcut(x))`; the shortcut is the identity when omitted.
 *
 * @example
 * ```ts
 * sewBlock({ branch: [conv2d(32, 32, 3, { padding: 1 }), batchNorm2d(32), lif()], connect: 'iand' })
 * ```
 */
export function sewBlock(options: { branch: LayerSpec[]; shortcut?: LayerSpec[]; connect: Connect }): LayerSpec {
  const connects: Connect[] = ['add', 'and', 'iand', 'or', 'xor']
  if (!connects.includes(options.connect))
    throw argError('sewBlock connect', `one of ${connects.join(', ')}`, options.connect)
  if (!Array.isArray(options.branch) || options.branch.length === 0)
    throw argError('sewBlock branch', 'a non-empty array of layers', options.branch)
  return { type: 'sewBlock', branch: options.branch, shortcut: options.shortcut ?? null, connect: options.connect }
}

/** SEW BasicBlock branch `conv3x3-BN-SN-conv3x3-BN-SN` (no conv bias), identity shortcut. */
export function sewBasicBlock(
  channels: number,
  options: { connect?: Connect; neuron?: () => LayerSpec } = {},
): LayerSpec {
  const sn = options.neuron ?? (() => lif())
  return sewBlock({
    branch: [
      conv2d(channels, channels, 3, { padding: 1, bias: false }),
      batchNorm2d(channels),
      sn(),
      conv2d(channels, channels, 3, { padding: 1, bias: false }),
      batchNorm2d(channels),
      sn(),
    ],
    connect: options.connect ?? 'iand',
  })
}

/** Rectified linear unit (used by the AAP projections; not a spiking layer). */
export const relu = (): LayerSpec => ({ type: 'relu' })

function layerList(name: string, v: unknown, nonEmpty = true): LayerSpec[] {
  if (!Array.isArray(v) || (nonEmpty && v.length === 0)) throw argError(name, 'a non-empty array of layers', v)
  return v as LayerSpec[]
}

/**
 * Spiking ResNet block: `O = SN_res(branch(x) + shortcut(x))`. The branch ends WITHOUT a neuron;
 * the residual neuron is an IF (V_th 1, V_reset 0 by default), so a silent branch passes spikes
 * through. The shortcut is the identity when omitted (conv1x1-BN, no neuron, when downsampling).
 */
export function spikingResnetBlock(options: {
  branch: LayerSpec[]
  shortcut?: LayerSpec[]
  residualNeuron?: Omit<NeuronOptions, 'tau' | 'decayInput'>
}): LayerSpec {
  const { type: _type, ...residualNeuron } = ifNode(options.residualNeuron ?? {}) as { type: string } & NeuronParams
  return {
    type: 'spikingResnetBlock',
    branch: layerList('spikingResnetBlock branch', options.branch),
    shortcut: options.shortcut === undefined ? null : layerList('spikingResnetBlock shortcut', options.shortcut),
    residualNeuron,
  }
}

/** Spiking ResNet BasicBlock `conv3x3(s)-BN-SN-conv3x3-BN` (last BN zero-initialised) + SN_res. */
export function spikingResnetBasicBlock(
  inChannels: number,
  outChannels: number,
  options: { stride?: number; neuron?: () => LayerSpec } = {},
): LayerSpec {
  const stride = positiveInt('spikingResnetBasicBlock stride', options.stride ?? 1)
  const sn = options.neuron ?? (() => ifNode())
  const down = stride !== 1 || inChannels !== outChannels
  return spikingResnetBlock({
    branch: [
      conv2d(inChannels, outChannels, 3, { stride, padding: 1, bias: false }),
      batchNorm2d(outChannels),
      sn(),
      conv2d(outChannels, outChannels, 3, { padding: 1, bias: false }),
      batchNorm2d(outChannels, { initWeight: 0 }),
    ],
    shortcut: down
      ? [conv2d(inChannels, outChannels, 1, { stride, bias: false }), batchNorm2d(outChannels)]
      : undefined,
  })
}

const DUAL_CONNECTS: DualConnect[] = ['and', 'iand', 'or', 'xor', 'spikingResnet']

/**
 * Dual-stream block on (O, A): `S = branch(O)` (the branch ends with its neuron),
 * `O' = g(S, shortcut(O))` (or `SN_res(S + shortcut(O))` for `spikingResnet`), `A' = P(A) + S`
 * with `P = projection` (identity when omitted). For use in `dualStream({ stages })`.
 */
export function dualStreamBlock(options: {
  branch: LayerSpec[]
  shortcut?: LayerSpec[]
  connect: DualConnect
  projection?: LayerSpec[]
  residualNeuron?: Omit<NeuronOptions, 'tau' | 'decayInput'>
}): DualStreamBlockSpec {
  if ((options.connect as string) === 'add') {
    throw argError(
      'dualStreamBlock connect',
      `one of ${DUAL_CONNECTS.join(', ')} ("add" breaks the full-spike stream: S + O is not a spike)`,
      options.connect,
    )
  }
  if (!DUAL_CONNECTS.includes(options.connect))
    throw argError('dualStreamBlock connect', `one of ${DUAL_CONNECTS.join(', ')}`, options.connect)
  if (options.residualNeuron !== undefined && options.connect !== 'spikingResnet') {
    throw argError(
      'dualStreamBlock residualNeuron',
      'to be omitted unless connect is "spikingResnet"',
      options.residualNeuron,
    )
  }
  let residualNeuron: NeuronParams | null = null
  if (options.connect === 'spikingResnet') {
    const { type: _type, ...params } = ifNode(options.residualNeuron ?? {}) as { type: string } & NeuronParams
    residualNeuron = params
  }
  return {
    type: 'block',
    branch: layerList('dualStreamBlock branch', options.branch),
    shortcut: options.shortcut === undefined ? null : layerList('dualStreamBlock shortcut', options.shortcut),
    connect: options.connect,
    projection: options.projection === undefined ? null : layerList('dualStreamBlock projection', options.projection),
    residualNeuron,
  }
}

export interface DualBlockOptions {
  stride?: number
  /** Default 'iand' (the released ImageNet models). */
  connect?: DualConnect
  /** Branch (and SEW-style shortcut) neuron; default IF. */
  neuron?: () => LayerSpec
  /** Zero-initialise the branch's last BN (identity mapping at start). Default true. */
  zeroInit?: boolean
  /** With connect 'spikingResnet': the residual IF neuron's options (V_th 1, V_reset 0 by default). */
  residualNeuron?: Omit<NeuronOptions, 'tau' | 'decayInput'>
}

/** The AAP projection P: `ReLU(BN(conv1x1(depthwise conv3x3 stride s)))`, or `ReLU(BN(conv1x1))` at stride 1. */
function projection(inChannels: number, outChannels: number, stride: number): LayerSpec[] {
  const convs =
    stride !== 1
      ? [
          conv2d(inChannels, inChannels, 3, { stride, padding: 1, groups: inChannels, bias: false }),
          conv2d(inChannels, outChannels, 1, { bias: false }),
        ]
      : [conv2d(inChannels, outChannels, 1, { bias: false })]
  return [...convs, batchNorm2d(outChannels), relu()]
}

function dualBlockFrom(
  branch: LayerSpec[],
  inChannels: number,
  outChannels: number,
  stride: number,
  options: DualBlockOptions,
): DualStreamBlockSpec {
  const connect = options.connect ?? 'iand'
  const sn = options.neuron ?? (() => ifNode())
  const residualNeuron = connect === 'spikingResnet' ? options.residualNeuron : undefined
  if (options.residualNeuron && !residualNeuron)
    throw argError('residualNeuron', "connect 'spikingResnet' (only that form has a residual neuron)", connect)
  if (stride === 1 && inChannels === outChannels) return dualStreamBlock({ branch, connect, residualNeuron })
  // The Spiking ResNet form's shortcut has no neuron (SN_res follows); the SEW form's does.
  const shortcut = [conv2d(inChannels, outChannels, 1, { stride, bias: false }), batchNorm2d(outChannels)]
  if (connect !== 'spikingResnet') shortcut.push(sn())
  return dualStreamBlock({
    branch,
    connect,
    shortcut,
    projection: projection(inChannels, outChannels, stride),
    residualNeuron,
  })
}

/**
 * Dual-stream BasicBlock: branch `conv3x3(s)-BN-SN-conv3x3-BN-SN`; downsampling shortcut and
 * projection when needed; the branch's last BN zero-initialised unless `zeroInit: false`.
 *
 * @example
 * ```ts
 * dualStream({ stages: [dualBasicBlock(32, 32, { connect: 'or' }), dualBasicBlock(32, 64, { stride: 2 })], classes: 10 })
 * ```
 */
export function dualBasicBlock(
  inChannels: number,
  outChannels: number,
  options: DualBlockOptions = {},
): DualStreamBlockSpec {
  const stride = positiveInt('dualBasicBlock stride', options.stride ?? 1)
  const sn = options.neuron ?? (() => ifNode())
  const branch = [
    conv2d(inChannels, outChannels, 3, { stride, padding: 1, bias: false }),
    batchNorm2d(outChannels),
    sn(),
    conv2d(outChannels, outChannels, 3, { padding: 1, bias: false }),
    batchNorm2d(outChannels, { initWeight: options.zeroInit === false ? 1 : 0 }),
    sn(),
  ]
  return dualBlockFrom(branch, inChannels, outChannels, stride, options)
}

/** Dual-stream Bottleneck: `conv1x1-BN-SN-conv3x3(s)-BN-SN-conv1x1(planes*4)-BN-SN`. */
export function dualBottleneck(
  inChannels: number,
  planes: number,
  options: DualBlockOptions & { expansion?: number } = {},
): DualStreamBlockSpec {
  const stride = positiveInt('dualBottleneck stride', options.stride ?? 1)
  const out = planes * positiveInt('dualBottleneck expansion', options.expansion ?? 4)
  const sn = options.neuron ?? (() => ifNode())
  const branch = [
    conv2d(inChannels, planes, 1, { bias: false }),
    batchNorm2d(planes),
    sn(),
    conv2d(planes, planes, 3, { stride, padding: 1, bias: false }),
    batchNorm2d(planes),
    sn(),
    conv2d(planes, out, 1, { bias: false }),
    batchNorm2d(out, { initWeight: options.zeroInit === false ? 1 : 0 }),
    sn(),
  ]
  return dualBlockFrom(branch, inChannels, out, stride, options)
}

function lastChannels(stages: DualStage[]): number | undefined {
  for (let i = stages.length - 1; i >= 0; i--) {
    const s = stages[i]
    if (s.type !== 'block') continue
    for (let j = s.branch.length - 1; j >= 0; j--) {
      const l = s.branch[j]
      if (l.type === 'conv2d') return l.outChannels
    }
  }
  return undefined
}

/**
 * The dual-stream trunk: blocks (`dualBasicBlock`, `dualBottleneck`, `dualStreamBlock`) and
 * poolings (`maxPool2d`, `avgPool2d`, applied to both streams), then the heads
 * `y_s = FC(GAP(O))`, `y_a = FC(GAP(A))` with one shared FC. It reads the stem's spikes and
 * must be the model's last layer. `aap: false` builds the full-spike network alone.
 *
 * @example
 * ```ts
 * const model = sequential([
 *   conv2d(1, 32, 3, { padding: 1, bias: false }), batchNorm2d(32), lif(), maxPool2d(2),
 *   dualStream({ stages: [dualBasicBlock(32, 32, { connect: 'or' }), maxPool2d(2)], classes: 10 }),
 * ], { timeSteps: 4, inputShape: [1, 28, 28] })
 * ```
 */
export function dualStream(options: {
  stages: (DualStage | LayerSpec)[]
  classes: number
  /** The FC's inputs: the last stage's channels for 'gap' (inferred), C*H*W for 'flatten' (required). */
  features?: number
  bias?: boolean
  aap?: boolean
  /** How each stream's last map reaches the shared FC: 'gap' (default), 'flatten' or 'tokens'. */
  headPool?: 'gap' | 'flatten' | 'tokens'
}): LayerSpec {
  const stages = layerList('dualStream stages', options.stages) as unknown as DualStage[]
  stages.forEach((s, i) => {
    if (!s || !['block', 'maxPool2d', 'avgPool2d'].includes((s as { type?: string }).type ?? '')) {
      throw argError(
        `dualStream stages[${i}]`,
        'a dual-stream block or a maxPool2d/avgPool2d',
        (s as { type?: string })?.type ?? s,
      )
    }
  })
  const headPool = options.headPool ?? 'gap'
  if (headPool !== 'gap' && headPool !== 'flatten' && headPool !== 'tokens')
    throw argError('dualStream headPool', "'gap', 'flatten' or 'tokens'", headPool)
  if (headPool === 'tokens' && options.features === undefined)
    throw argError('dualStream features', "the tokens' channels C (required with headPool 'tokens')", undefined)
  if (headPool === 'flatten' && options.features === undefined)
    throw argError(
      'dualStream features',
      "C*H*W of the last stage's output (required with headPool 'flatten')",
      undefined,
    )
  const features = options.features ?? lastChannels(stages)
  if (features === undefined)
    throw argError('dualStream features', 'the channels of the last stage (no conv found to infer them)', undefined)
  return {
    type: 'dualStream',
    stages,
    head: {
      inFeatures: positiveInt('dualStream features', features),
      outFeatures: positiveInt('dualStream classes', options.classes),
      bias: options.bias ?? true,
    },
    aap: options.aap ?? true,
    ...(headPool !== 'gap' ? { headPool } : {}),
  }
}
