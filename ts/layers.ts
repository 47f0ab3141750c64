// Builders: typed functions that return validated layer specs. They do no numeric work.
import { argError } from './errors'
import type { Connect, LayerSpec, NeuronParams, Pair, SurrogateSpec } from './spec'

function positiveInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw argError(name, 'a positive integer', v)
  return v
}

function nonNegativeInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw argError(name, 'a non-negative integer', v)
  return v
}

function pair(name: string, v: unknown, check: (n: string, x: unknown) => number): Pair {
  if (Array.isArray(v)) {
    if (v.length !== 2) throw argError(name, 'a number or a pair [h, w]', v)
    return [check(`${name}[0]`, v[0]), check(`${name}[1]`, v[1])]
  }
  const x = check(name, v)
  return [x, x]
}

function finite(name: string, v: unknown, min = -Infinity, minExclusive = false): number {
  if (typeof v !== 'number' || !Number.isFinite(v) || v < min || (minExclusive && v === min)) {
    throw argError(name, minExclusive ? `a finite number > ${min}` : min > -Infinity ? `a finite number >= ${min}` : 'a finite number', v)
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

export function conv2d(inChannels: number, outChannels: number, kernelSize: number | Pair, options: Conv2dOptions = {}): LayerSpec {
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
    kernelSize: pair('conv2d kernelSize', kernelSize, positiveInt),
    stride: pair('conv2d stride', options.stride ?? 1, positiveInt),
    padding: pair('conv2d padding', options.padding ?? 0, nonNegativeInt),
    dilation: pair('conv2d dilation', options.dilation ?? 1, positiveInt),
    groups,
    bias: options.bias ?? true,
  }
}

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
}

export function batchNorm2d(numFeatures: number, options: BatchNormOptions = {}): LayerSpec {
  const momentum = finite('batchNorm2d momentum', options.momentum ?? 0.1, 0)
  if (momentum > 1) throw argError('batchNorm2d momentum', 'a number in [0, 1]', momentum)
  return {
    type: 'batchNorm2d',
    numFeatures: positiveInt('batchNorm2d numFeatures', numFeatures),
    eps: finite('batchNorm2d eps', options.eps ?? 1e-5, 0, true),
    momentum,
    initWeight: finite('batchNorm2d initWeight', options.initWeight ?? 1),
  }
}

export interface PoolOptions {
  /** Defaults to the kernel size. */
  stride?: number | Pair
  padding?: number | Pair
}

function pool(type: 'maxPool2d' | 'avgPool2d', kernelSize: number | Pair, options: PoolOptions): LayerSpec {
  const k = pair(`${type} kernelSize`, kernelSize, positiveInt)
  return {
    type,
    kernelSize: k,
    stride: pair(`${type} stride`, options.stride ?? k, positiveInt),
    padding: pair(`${type} padding`, options.padding ?? 0, nonNegativeInt),
  }
}

export const maxPool2d = (kernelSize: number | Pair, options: PoolOptions = {}): LayerSpec => pool('maxPool2d', kernelSize, options)
export const avgPool2d = (kernelSize: number | Pair, options: PoolOptions = {}): LayerSpec => pool('avgPool2d', kernelSize, options)
export const globalAvgPool = (): LayerSpec => ({ type: 'globalAvgPool' })
export const flatten = (): LayerSpec => ({ type: 'flatten' })

export function dropout(p: number): LayerSpec {
  if (typeof p !== 'number' || !(p >= 0 && p < 1)) throw argError('dropout p', 'a probability in [0, 1)', p)
  return { type: 'dropout', p }
}

/** Surrogate gradients (derivatives of a smooth stand-in for the Heaviside step). */
export const surrogate = {
  sigmoid: (alpha = 4): SurrogateSpec => ({ type: 'sigmoid', alpha: finite('surrogate alpha', alpha, 0, true) }),
  atan: (alpha = 2): SurrogateSpec => ({ type: 'atan', alpha: finite('surrogate alpha', alpha, 0, true) }),
  piecewiseQuadratic: (alpha = 1): SurrogateSpec => ({ type: 'piecewiseQuadratic', alpha: finite('surrogate alpha', alpha, 0, true) }),
  superSpike: (alpha = 100): SurrogateSpec => ({ type: 'superSpike', alpha: finite('surrogate alpha', alpha, 0, true) }),
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

/** Integrate-and-fire neuron. */
export const ifNode = (options: Omit<NeuronOptions, 'tau' | 'decayInput'> = {}): LayerSpec => neuron('if', options)
/** Leaky integrate-and-fire neuron. */
export const lif = (options: NeuronOptions = {}): LayerSpec => neuron('lif', options)
/** Parametric LIF: the time constant is learnt (`1/tau = sigmoid(w)`). */
export const plif = (options: NeuronOptions = {}): LayerSpec => neuron('plif', options)

/** SEW residual block: `O = g(branch(x), shortcut(x))`; the shortcut is the identity when omitted. */
export function sewBlock(options: { branch: LayerSpec[]; shortcut?: LayerSpec[]; connect: Connect }): LayerSpec {
  const connects: Connect[] = ['add', 'and', 'iand', 'or', 'xor']
  if (!connects.includes(options.connect)) throw argError('sewBlock connect', `one of ${connects.join(', ')}`, options.connect)
  if (!Array.isArray(options.branch) || options.branch.length === 0) throw argError('sewBlock branch', 'a non-empty array of layers', options.branch)
  return { type: 'sewBlock', branch: options.branch, shortcut: options.shortcut ?? null, connect: options.connect }
}

/** SEW BasicBlock branch `conv3x3-BN-SN-conv3x3-BN-SN` (no conv bias), identity shortcut. */
export function sewBasicBlock(channels: number, options: { connect?: Connect; neuron?: () => LayerSpec } = {}): LayerSpec {
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
