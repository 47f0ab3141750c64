// Ready-made networks. The default Fashion-MNIST network is what `dualstream train` runs.
import { argError } from './errors'
import {
  avgPool2d,
  batchNorm2d,
  conv2d,
  dualBasicBlock,
  dualBottleneck,
  dualStream,
  dualStreamBlock,
  flatten,
  globalAvgPool,
  ifNode,
  lif,
  linear,
  maxPool2d,
  plif,
  relu,
  sewBlock,
  spikingResnetBlock,
  surrogate,
} from './layers'
import type { Connect, DualConnect, DualStage, Encoding, LayerSpec } from './spec'

/**
 * A small convolutional SNN for 28x28 grey images:
 * conv3x3(1->c1)-BN-LIF-maxpool2, conv3x3(c1->c2)-BN-LIF-maxpool2, flatten, linear(->classes).
 * LIF tau 2, ATan surrogate, detach_reset, hard reset: SpikingJelly's usual settings.
 */
export function convSnn(
  options: { inChannels?: number; size?: number; classes?: number; widths?: [number, number] } = {},
): LayerSpec[] {
  const { inChannels = 1, size = 28, classes = 10, widths = [32, 32] } = options
  const [c1, c2] = widths
  const neuron = () => lif({ tau: 2, detachReset: true, surrogate: surrogate.atan(2) })
  const out = Math.floor(Math.floor(size / 2) / 2)
  return [
    conv2d(inChannels, c1, 3, { padding: 1, bias: false }),
    batchNorm2d(c1),
    neuron(),
    maxPool2d(2),
    conv2d(c1, c2, 3, { padding: 1, bias: false }),
    batchNorm2d(c2),
    neuron(),
    maxPool2d(2),
    flatten(),
    linear(c2 * out * out, classes),
  ]
}

// ---------------------------------------------------------------------------------------------
// The model zoo of the Dual-Stream Training paper (docs/dual-stream-training.md) and the two
// comparison families with the same widths: Spiking ResNet (`O = SN_res(F(O) + O)`) and SEW
// (`O = g(SN(F(O)), O)`). Every builder returns a `ZooNet`: the layer specs plus the model
// options, so `new Model(net.layers, net)` / `sequential(net.layers, { ...net, seed })` work.
// ---------------------------------------------------------------------------------------------

/** A network from the zoo: its layers and the options `Model` needs to run it. */
/**
 * A small dual-stream SNN for 28x28 grey images, the DSNN counterpart of `convSnn`:
 * conv3x3(1->c)-BN-LIF-maxpool2, then the trunk: dual-stream BasicBlock(c), maxpool2 on both
 * streams, dual-stream BasicBlock(c), and the shared FC over the flattened c x 7 x 7 map of each
 * stream (`headPool: 'flatten'`). Train it with DST; deploy `toFullSpike()`.
 *
 * `blocks: 3` builds the deeper trunk BasicBlock(c), BasicBlock(c -> 2c, stride 2: a conv1x1 spike
 * shortcut and the AAP projection), BasicBlock(2c), with the FC over the 2c x 7 x 7 maps: 2.2 times
 * the multiply-adds of the two-block network, the CLI's network for Fashion-MNIST and MNIST at T = 2.
 */
export function convDsnn(
  options: {
    inChannels?: number
    size?: number
    classes?: number
    width?: number
    connect?: DualConnect
    /**
     * 'max' (default): max pooling after the stem and between the blocks. 'avg': the NIR-ready
     * variant for frameworks without NIR Threshold nodes: the stem averages its conv output
     * before the neuron (conv-BN-avgpool2-LIF) and the second block downsamples itself
     * (stride 2, conv1x1 spike shortcut), so only spikes reach the joins.
     */
    pool?: 'max' | 'avg'
    /** 2 (default): two blocks of c channels with a max pool between them; 3: see above. */
    blocks?: 2 | 3
  } = {},
): LayerSpec[] {
  const { inChannels = 1, size = 28, classes = 10, width = 32, connect = 'or', pool = 'max', blocks = 2 } = options
  if (pool !== 'max' && pool !== 'avg') throw argError('convDsnn pool', "'max' or 'avg'", pool)
  if (blocks !== 2 && blocks !== 3) throw argError('convDsnn blocks', '2 or 3', blocks)
  const neuron = () => lif({ tau: 2, detachReset: true, surrogate: surrogate.atan(2) })
  const side = Math.floor(Math.floor(size / 2) / 2)
  // A stride-2 conv with padding 1 keeps the odd row a max pool drops.
  const strided = Math.ceil(Math.floor(size / 2) / 2)
  const stem =
    pool === 'max'
      ? [conv2d(inChannels, width, 3, { padding: 1, bias: false }), batchNorm2d(width), neuron(), maxPool2d(2)]
      : [conv2d(inChannels, width, 3, { padding: 1, bias: false }), batchNorm2d(width), avgPool2d(2), neuron()]
  const trunk =
    blocks === 3
      ? [
          dualBasicBlock(width, width, { connect, neuron }),
          dualBasicBlock(width, 2 * width, { connect, neuron, stride: 2 }),
          dualBasicBlock(2 * width, 2 * width, { connect, neuron }),
        ]
      : pool === 'max'
        ? [
            dualBasicBlock(width, width, { connect, neuron }),
            maxPool2d(2),
            dualBasicBlock(width, width, { connect, neuron }),
          ]
        : [
            dualBasicBlock(width, width, { connect, neuron }),
            dualBasicBlock(width, width, { connect, neuron, stride: 2 }),
          ]
  return [
    ...stem,
    dualStream({
      stages: trunk,
      classes,
      headPool: 'flatten',
      features: blocks === 3 ? 2 * width * strided * strided : width * side * side,
    }),
  ]
}

export interface ZooNet {
  name: string
  layers: LayerSpec[]
  timeSteps: number
  inputShape: number[]
  encoding: Encoding
  classes: number
  /** Residual blocks in the trunk (a Wide-7B transition block counts as one). */
  blocks: number
}

export type ZooFamily = 'dsnn' | 'spikingResnet' | 'sew'
/** A neuron by name (the paper's defaults: V_th 1, V_reset 0, tau 2) or a factory returning a neuron spec. */
export type ZooNeuron = 'if' | 'lif' | 'plif' | (() => LayerSpec)

const FAMILIES: ZooFamily[] = ['dsnn', 'spikingResnet', 'sew']
const SEW_CONNECTS: Connect[] = ['add', 'and', 'iand', 'or', 'xor']
const DUAL_CONNECTS: DualConnect[] = ['and', 'iand', 'or', 'xor', 'spikingResnet']

// --- argument checks: every message names the builder and the argument -----------------------

function checkOptions(fn: string, options: unknown, allowed: string[]): Record<string, unknown> {
  if (options === undefined) return {}
  if (typeof options !== 'object' || options === null || Array.isArray(options))
    throw argError(`${fn} options`, 'an object', options)
  // A misspelt option (`block` for `blocks`) would otherwise silently build the default network.
  for (const key of Object.keys(options)) {
    if (!allowed.includes(key)) throw argError(`${fn} options.${key}`, `one of the options ${allowed.join(', ')}`, key)
  }
  return options as Record<string, unknown>
}

function posInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw argError(name, 'a positive integer', v)
  return v
}

function posIntList(name: string, v: unknown, length?: number): number[] {
  if (!Array.isArray(v) || v.length === 0 || (length !== undefined && v.length !== length)) {
    throw argError(
      name,
      length === undefined ? 'a non-empty array of positive integers' : `an array of ${length} positive integers`,
      v,
    )
  }
  return v.map((x, i) => posInt(`${name}[${i}]`, x))
}

function bool(name: string, v: unknown, fallback: boolean): boolean {
  if (v === undefined) return fallback
  if (typeof v !== 'boolean') throw argError(name, 'a boolean', v)
  return v
}

function oneOf<T extends string>(name: string, v: unknown, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback
  if (typeof v !== 'string' || !allowed.includes(v as T)) throw argError(name, `one of ${allowed.join(', ')}`, v)
  return v as T
}

function checkInputShape(name: string, v: unknown, minSize = 1): number[] {
  if (!Array.isArray(v) || v.length !== 3 || !v.every((d) => Number.isInteger(d) && d > 0)) {
    throw argError(name, 'a sample shape [channels, height, width] of positive integers', v)
  }
  if (v[1] < minSize || v[2] < minSize)
    throw argError(
      name,
      `height and width of at least ${minSize} (the network halves them that often)`,
      `[${v.join(', ')}]`,
    )
  return [...v]
}

function neuronFactory(name: string, v: unknown, fallback: () => LayerSpec): () => LayerSpec {
  if (v === undefined) return fallback
  if (typeof v === 'function') {
    // Called once here so that a factory returning, say, a conv fails at the argument, not deep in the engine.
    const probe = (v as () => unknown)() as { type?: unknown } | undefined
    if (!probe || !['if', 'lif', 'plif'].includes(probe.type as string)) {
      throw argError(name, 'a function returning a neuron spec (ifNode, lif or plif)', probe?.type ?? probe)
    }
    return v as () => LayerSpec
  }
  if (v === 'if') return () => ifNode()
  if (v === 'lif') return () => lif()
  if (v === 'plif') return () => plif()
  throw argError(name, '"if", "lif", "plif" or a function returning a neuron spec', v)
}

function connectFor(
  fn: string,
  family: ZooFamily,
  v: unknown,
  dualDefault: DualConnect,
  sewDefault: Connect,
): DualConnect | Connect | undefined {
  if (family === 'spikingResnet') {
    if (v !== undefined)
      throw argError(`${fn} connect`, 'to be omitted for the Spiking ResNet family (its join is SN_res(F(x) + x))', v)
    return undefined
  }
  if (family === 'dsnn') {
    if (v === 'add')
      throw argError(
        `${fn} connect`,
        `one of ${DUAL_CONNECTS.join(', ')} ("add" breaks the full-spike stream: S + O is not a spike)`,
        v,
      )
    return oneOf(`${fn} connect`, v, DUAL_CONNECTS, dualDefault)
  }
  return oneOf(`${fn} connect`, v, SEW_CONNECTS, sewDefault)
}

// --- residual blocks of the three families ----------------------------------------------------

export type BlockKind = 'basic' | 'bottleneck'

interface BlockPlan {
  family: ZooFamily
  kind: BlockKind
  inChannels: number
  /** Bottleneck width (the output is planes * 4) or the BasicBlock's output channels. */
  planes: number
  stride: number
  sn: () => LayerSpec
  connect: DualConnect | Connect | undefined
  zeroInit: boolean
}

const outChannelsOf = (kind: BlockKind, planes: number) => (kind === 'bottleneck' ? planes * 4 : planes)

/** The residual branch F; SEW's ends with its neuron, Spiking ResNet's does not (SN_res follows). */
function branchOf(p: BlockPlan, endWithNeuron: boolean): LayerSpec[] {
  const out = outChannelsOf(p.kind, p.planes)
  const lastBn = batchNorm2d(out, { initWeight: p.zeroInit ? 0 : 1 })
  const layers =
    p.kind === 'basic'
      ? [
          conv2d(p.inChannels, out, 3, { stride: p.stride, padding: 1, bias: false }),
          batchNorm2d(out),
          p.sn(),
          conv2d(out, out, 3, { padding: 1, bias: false }),
          lastBn,
        ]
      : [
          conv2d(p.inChannels, p.planes, 1, { bias: false }),
          batchNorm2d(p.planes),
          p.sn(),
          conv2d(p.planes, p.planes, 3, { stride: p.stride, padding: 1, bias: false }),
          batchNorm2d(p.planes),
          p.sn(),
          conv2d(p.planes, out, 1, { bias: false }),
          lastBn,
        ]
  if (endWithNeuron) layers.push(p.sn())
  return layers
}

function residualBlock(p: BlockPlan): LayerSpec | DualStage {
  const out = outChannelsOf(p.kind, p.planes)
  const down = p.stride !== 1 || p.inChannels !== out
  const opts = { stride: p.stride, connect: p.connect as DualConnect, neuron: p.sn, zeroInit: p.zeroInit }
  switch (p.family) {
    case 'dsnn':
      // The project's dual-stream blocks already carry the spike shortcut SN(BN(conv1x1 s)) and
      // the AAP projection of a downsampling block.
      return p.kind === 'basic' ? dualBasicBlock(p.inChannels, out, opts) : dualBottleneck(p.inChannels, p.planes, opts)
    case 'sew':
      return sewBlock({
        branch: branchOf(p, true),
        shortcut: down
          ? [conv2d(p.inChannels, out, 1, { stride: p.stride, bias: false }), batchNorm2d(out), p.sn()]
          : undefined,
        connect: p.connect as Connect,
      })
    case 'spikingResnet':
      return spikingResnetBlock({
        branch: branchOf(p, false),
        shortcut: down
          ? [conv2d(p.inChannels, out, 1, { stride: p.stride, bias: false }), batchNorm2d(out)]
          : undefined,
      })
  }
}

/**
 * The trunk after the stem: residual stages, then GAP + FC. For the DSNN family it is one
 * `dualStream` layer (shared-FC heads on both streams); the others are plain layers.
 */
function trunk(
  family: ZooFamily,
  stages: (LayerSpec | DualStage)[],
  features: number,
  classes: number,
  aap: boolean,
): LayerSpec[] {
  if (family === 'dsnn') {
    // The engine refuses projections in a trunk without the accumulation stream.
    const dual = (stages as DualStage[]).map((s) => (aap || s.type !== 'block' ? s : { ...s, projection: null }))
    return [dualStream({ stages: dual, classes, features, aap })]
  }
  return [...(stages as LayerSpec[]), globalAvgPool(), linear(features, classes)]
}

interface StagePlan {
  family: ZooFamily
  kind: BlockKind
  stemChannels: number
  /** Per stage: planes and number of blocks; stage i > 0 starts with a stride-2 block. */
  planes: number[]
  blocks: number[]
  sn: () => LayerSpec
  connect: DualConnect | Connect | undefined
  zeroInit: boolean
}

function resnetStages(p: StagePlan): { stages: (LayerSpec | DualStage)[]; features: number } {
  const stages: (LayerSpec | DualStage)[] = []
  let inChannels = p.stemChannels
  p.planes.forEach((planes, i) => {
    for (let b = 0; b < p.blocks[i]; b++) {
      const stride = b === 0 && i > 0 ? 2 : 1
      stages.push(
        residualBlock({
          family: p.family,
          kind: p.kind,
          inChannels,
          planes,
          stride,
          sn: p.sn,
          connect: p.connect,
          zeroInit: p.zeroInit,
        }),
      )
      inChannels = outChannelsOf(p.kind, planes)
    }
  })
  return { stages, features: inChannels }
}

// --- the ImageNet family: DSNN / Spiking ResNet / SEW ResNet 18, 34, 50, 101 ------------------

const RESNET_DEPTHS = {
  18: { kind: 'basic', blocks: [2, 2, 2, 2] },
  34: { kind: 'basic', blocks: [3, 4, 6, 3] },
  50: { kind: 'bottleneck', blocks: [3, 4, 6, 3] },
  101: { kind: 'bottleneck', blocks: [3, 4, 23, 3] },
} as const

export interface ResnetOptions {
  /** Default [3, 224, 224]. */
  inputShape?: number[]
  /** Default 1000. */
  classes?: number
  /** Simulation steps T; default 4 (the paper's ImageNet models). */
  timeSteps?: number
  /** Branch (and SEW-style shortcut) neuron; default IF. */
  neuron?: ZooNeuron
  /** DSNN default 'iand' (the released models); SEW default 'add'; not used by Spiking ResNet. */
  connect?: DualConnect | Connect
  /**
   * Zero-initialise each branch's last BN (identity mapping at start). Default true. With g = AND
   * the identity needs S = 1, so a silent branch zeroes the stream: pass false there.
   */
  zeroInit?: boolean
  /** DSNN only: `false` builds the full-spike network without the AAP. Default true. */
  aap?: boolean
}

const RESNET_KEYS = ['inputShape', 'classes', 'timeSteps', 'neuron', 'connect', 'zeroInit', 'aap']

function imagenetResnet(
  family: ZooFamily,
  depth: keyof typeof RESNET_DEPTHS,
  options: ResnetOptions | undefined,
): ZooNet {
  const name = `${family === 'dsnn' ? 'dsnn' : family === 'sew' ? 'sewResnet' : 'spikingResnet'}${depth}`
  const o = checkOptions(name, options, family === 'dsnn' ? RESNET_KEYS : RESNET_KEYS.filter((k) => k !== 'aap'))
  const inputShape = checkInputShape(`${name} inputShape`, o.inputShape ?? [3, 224, 224])
  const classes = posInt(`${name} classes`, o.classes ?? 1000)
  const timeSteps = posInt(`${name} timeSteps`, o.timeSteps ?? 4)
  const sn = neuronFactory(`${name} neuron`, o.neuron, () => ifNode())
  const connect = connectFor(name, family, o.connect, 'iand', 'add')
  const zeroInit = bool(`${name} zeroInit`, o.zeroInit, true)
  const aap = bool(`${name} aap`, o.aap, true)
  const { kind, blocks } = RESNET_DEPTHS[depth]
  // ImageNet stem. The paper applies conv7x7-BN once to the static image and repeats the result
  // T times; we feed the image at every step (direct encoding) instead. The conv sees the same
  // image each step and BN's batch statistics over T identical copies equal those over N, so
  // the spikes are the same; only the stem's cost differs, which the energy count must take
  // once (docs/energy.md).
  const stem = [
    conv2d(inputShape[0], 64, 7, { stride: 2, padding: 3, bias: false }),
    batchNorm2d(64),
    sn(),
    maxPool2d(3, { stride: 2, padding: 1 }),
  ]
  const { stages, features } = resnetStages({
    family,
    kind,
    stemChannels: 64,
    planes: [64, 128, 256, 512],
    blocks: [...blocks],
    sn,
    connect,
    zeroInit,
  })
  return {
    name,
    inputShape,
    classes,
    timeSteps,
    encoding: 'direct',
    layers: [...stem, ...trunk(family, stages, features, classes, aap)],
    blocks: stages.length,
  }
}

/**
 * DSNN-18: dual-stream BasicBlocks [2, 2, 2, 2], IF, T = 4, g = IAND, ImageNet stem.
 *
 * @example
 * ```ts
 * const net = dsnn18()   // { layers, timeSteps: 4, inputShape: [3, 224, 224], encoding, classes: 1000, blocks }
 * const model = sequential(net.layers, { ...net, seed: 0 })
 * ```
 */
export const dsnn18 = (options?: ResnetOptions): ZooNet => imagenetResnet('dsnn', 18, options)
/** DSNN-34: dual-stream BasicBlocks [3, 4, 6, 3]. */
export const dsnn34 = (options?: ResnetOptions): ZooNet => imagenetResnet('dsnn', 34, options)
/** DSNN-50: dual-stream Bottlenecks [3, 4, 6, 3] (output width planes * 4). */
export const dsnn50 = (options?: ResnetOptions): ZooNet => imagenetResnet('dsnn', 50, options)
/** DSNN-101: dual-stream Bottlenecks [3, 4, 23, 3]. */
export const dsnn101 = (options?: ResnetOptions): ZooNet => imagenetResnet('dsnn', 101, options)
/** Spiking ResNet-18 with the same widths (residual neuron IF, conv1x1-BN downsampling shortcut). */
export const spikingResnet18 = (options?: Omit<ResnetOptions, 'aap' | 'connect'>): ZooNet =>
  imagenetResnet('spikingResnet', 18, options)
/** Spiking ResNet-34 (BasicBlocks [3, 4, 6, 3]). */
export const spikingResnet34 = (options?: Omit<ResnetOptions, 'aap' | 'connect'>): ZooNet =>
  imagenetResnet('spikingResnet', 34, options)
/** Spiking ResNet-50 (Bottlenecks [3, 4, 6, 3]). */
export const spikingResnet50 = (options?: Omit<ResnetOptions, 'aap' | 'connect'>): ZooNet =>
  imagenetResnet('spikingResnet', 50, options)
/** Spiking ResNet-101 (Bottlenecks [3, 4, 23, 3]). */
export const spikingResnet101 = (options?: Omit<ResnetOptions, 'aap' | 'connect'>): ZooNet =>
  imagenetResnet('spikingResnet', 101, options)
/**
 * SEW ResNet-18 (connect default ADD; downsampling shortcut conv1x1-BN-SN).
 *
 * @example
 * ```ts
 * const net = sewResnet18({ connect: 'iand' })
 * const model = sequential(net.layers, { ...net, seed: 0 })
 * ```
 */
export const sewResnet18 = (options?: Omit<ResnetOptions, 'aap'>): ZooNet => imagenetResnet('sew', 18, options)
/** SEW ResNet-34 (BasicBlocks [3, 4, 6, 3]). */
export const sewResnet34 = (options?: Omit<ResnetOptions, 'aap'>): ZooNet => imagenetResnet('sew', 34, options)
/** SEW ResNet-50 (Bottlenecks [3, 4, 6, 3]). */
export const sewResnet50 = (options?: Omit<ResnetOptions, 'aap'>): ZooNet => imagenetResnet('sew', 50, options)
/** SEW ResNet-101 (Bottlenecks [3, 4, 23, 3]). */
export const sewResnet101 = (options?: Omit<ResnetOptions, 'aap'>): ZooNet => imagenetResnet('sew', 101, options)

// --- the DVS family: 7B-Net and Wide-7B-Net ---------------------------------------------------

export interface Net7bOptions {
  /** Default [2, 128, 128] (DVS polarity channels). */
  inputShape?: number[]
  /** Default 11 (DVS Gesture) for the 7B nets, 10 (CIFAR10-DVS) for the wide ones. */
  classes?: number
  /** Simulation steps T; default 16 (the paper's 7B-Nets). */
  timeSteps?: number
  /** Default 'sequence': event frames arrive as `[T, N, ...]`. */
  encoding?: Encoding
  /** Default PLIF, init_tau 2, detach_reset. */
  neuron?: ZooNeuron
  /** DSNN default 'iand'; SEW default 'add'; not used by Spiking ResNet. */
  connect?: DualConnect | Connect
  /** Default true. */
  zeroInit?: boolean
  /** DSNN only; default true. */
  aap?: boolean
  /**
   * 'max' (default): each block is followed by MPk2s2. 'strided': the NIR-ready variant for
   * frameworks without NIR Threshold nodes: each {block-MPk2s2} becomes one block that
   * downsamples itself (stride 2, conv1x1 spike shortcut), so the spike stream holds spikes
   * only and no max pooling is left.
   */
  pool?: 'max' | 'strided'
}

const NET7B_KEYS = ['inputShape', 'classes', 'timeSteps', 'encoding', 'neuron', 'connect', 'zeroInit', 'aap', 'pool']

interface Net7bPlan {
  name: string
  family: ZooFamily
  classes: number
  /** From the `blocks` option: [channels, {block-maxpool} repeats] per width group; a group after the first starts with a transition. */
  groups: (blocks: unknown) => [number, number][]
}

function net7b(plan: Net7bPlan, options: unknown): ZooNet {
  const { name, family } = plan
  let keys = [...NET7B_KEYS, 'blocks']
  if (family !== 'dsnn') keys = keys.filter((k) => k !== 'aap')
  const o = checkOptions(name, options, keys)
  const groups = plan.groups(o.blocks)
  const pools = groups.reduce((s, [, n]) => s + n, 0)
  // Each {block - MPk2s2} halves the size without padding, so the input must survive every halving.
  const inputShape = checkInputShape(`${name} inputShape`, o.inputShape ?? [2, 128, 128], 2 ** pools)
  const classes = posInt(`${name} classes`, o.classes ?? plan.classes)
  const timeSteps = posInt(`${name} timeSteps`, o.timeSteps ?? 16)
  const encoding = oneOf<Encoding>(`${name} encoding`, o.encoding, ['direct', 'sequence'], 'sequence')
  const sn = neuronFactory(`${name} neuron`, o.neuron, () => plif({ tau: 2, detachReset: true }))
  const connect = connectFor(name, family, o.connect, 'iand', 'add')
  const zeroInit = bool(`${name} zeroInit`, o.zeroInit, true)
  const aap = bool(`${name} aap`, o.aap, true)
  const pool = oneOf(`${name} pool`, o.pool, ['max', 'strided'] as const, 'max')

  const [c0] = groups[0]
  const stem = [conv2d(inputShape[0], c0, 3, { padding: 1, bias: false }), batchNorm2d(c0), sn()]
  const stages: (LayerSpec | DualStage)[] = []
  let blocks = 0
  let channels = c0
  for (const [c, repeats] of groups) {
    if (c !== channels) {
      stages.push(...transition(family, channels, c, sn, connect, zeroInit))
      if (family === 'dsnn') blocks++
      channels = c
    }
    for (let i = 0; i < repeats; i++) {
      if (pool === 'strided') {
        stages.push(
          residualBlock({ family, kind: 'basic', inChannels: c, planes: c, stride: 2, sn, connect, zeroInit }),
        )
      } else {
        stages.push(
          residualBlock({ family, kind: 'basic', inChannels: c, planes: c, stride: 1, sn, connect, zeroInit }),
          maxPool2d(2),
        )
      }
      blocks++
    }
  }
  return {
    name,
    inputShape,
    classes,
    timeSteps,
    encoding,
    layers: [...stem, ...trunk(family, stages, channels, classes, aap)],
    blocks,
  }
}

/**
 * Wide-7B's `c128k3s1-BN-PLIF` between the 64- and the 128-channel blocks.
 *
 * SEW and Spiking ResNet: the plain layers, exactly as written.
 *
 * DSNN: a dual-stream trunk only holds blocks and poolings, and the accumulation stream A (64
 * channels) must reach the 128-channel blocks. We make the transition a dual-stream
 * downsampling block at stride 1, following the paper's rule for a channel change: branch
 * `conv3x3-BN-PLIF` (the transition layer itself), spike shortcut `SN(BN(conv1x1))`, AAP
 * projection `ReLU(BN(conv1x1(A)))`, and `A' = P(A) + S`. This keeps what the AAP is for — A
 * accumulates every branch's spikes from the stem to the head, and its gradient path does not
 * restart mid-network — and keeps the spike stream full-spike. The price: the FSNN's transition
 * is `g(conv3x3-BN-PLIF, conv1x1-BN-PLIF)` rather than a single conv3x3-BN-PLIF (one 64x128
 * 1x1 conv more). The alternatives cannot be written with today's stages: "restart A from the
 * transition's spikes" (as the stem does) drops the first four blocks' accumulation, and a
 * stage applying conv-BN-PLIF to O alone with `A' = P(A) + O'` needs a new engine stage type.
 */
function transition(
  family: ZooFamily,
  inC: number,
  outC: number,
  sn: () => LayerSpec,
  connect: DualConnect | Connect | undefined,
  zeroInit: boolean,
): (LayerSpec | DualStage)[] {
  if (family !== 'dsnn') return [conv2d(inC, outC, 3, { padding: 1, bias: false }), batchNorm2d(outC), sn()]
  const shortcut = [conv2d(inC, outC, 1, { bias: false }), batchNorm2d(outC)]
  if (connect !== 'spikingResnet') shortcut.push(sn())
  return [
    dualStreamBlock({
      branch: [
        conv2d(inC, outC, 3, { padding: 1, bias: false }),
        batchNorm2d(outC, { initWeight: zeroInit ? 0 : 1 }),
        sn(),
      ],
      shortcut,
      connect: connect as DualConnect,
      projection: [conv2d(inC, outC, 1, { bias: false }), batchNorm2d(outC), relu()],
    }),
  ]
}

/** 7B options plus `blocks`: the number of {DSBlock-MPk2s2} repeats (default 7). */
export type Net7bRepeatOptions = Net7bOptions & { blocks?: number }
/** Wide-7B options plus `blocks`: repeats at 64 and at 128 channels (default [4, 3]). */
export type WideNet7bOptions = Net7bOptions & { blocks?: [number, number] }

const plan7b = (name: string, family: ZooFamily, options: unknown): ZooNet =>
  net7b(
    { name, family, classes: 11, groups: (b) => [[32, b === undefined ? 7 : posInt(`${name} blocks`, b)]] },
    options,
  )

function planWide7b(name: string, family: ZooFamily, options: unknown): ZooNet {
  const groups = (b: unknown): [number, number][] => {
    const [n64, n128] = b === undefined ? [4, 3] : posIntList(`${name} blocks`, b, 2)
    return [
      [64, n64],
      [128, n128],
    ]
  }
  return net7b({ name, family, classes: 10, groups }, options)
}

/** 7B-Net DSNN (DVS Gesture): `c32k3s1-BN-PLIF-{DSBlock(c32)-MPk2s2}*7-FC11`, T = 16. */
export const dsnn7b = (options?: Net7bRepeatOptions): ZooNet => plan7b('dsnn7b', 'dsnn', options)
/** SEW 7B-Net with the same layout (connect default ADD). */
export const sew7b = (options?: Omit<Net7bRepeatOptions, 'aap'>): ZooNet => plan7b('sew7b', 'sew', options)
/** Spiking ResNet 7B-Net with the same layout. */
export const spikingResnet7b = (options?: Omit<Net7bRepeatOptions, 'aap' | 'connect'>): ZooNet =>
  plan7b('spikingResnet7b', 'spikingResnet', options)
/**
 * Wide-7B-Net DSNN (CIFAR10-DVS):
 * `c64k3s1-BN-PLIF-{DSBlock(c64)-MPk2s2}*4-c128k3s1-BN-PLIF-{DSBlock(c128)-MPk2s2}*3-FC10`, T = 16;
 * the middle conv is a dual-stream transition block (see `transition`).
 */
export const wideDsnn7b = (options?: WideNet7bOptions): ZooNet => planWide7b('wideDsnn7b', 'dsnn', options)
/** SEW Wide-7B-Net with the same layout (connect default ADD). */
export const wideSew7b = (options?: Omit<WideNet7bOptions, 'aap'>): ZooNet => planWide7b('wideSew7b', 'sew', options)
/** Spiking ResNet Wide-7B-Net with the same layout. */
export const wideSpikingResnet7b = (options?: Omit<WideNet7bOptions, 'aap' | 'connect'>): ZooNet =>
  planWide7b('wideSpikingResnet7b', 'spikingResnet', options)

// --- small-input variants for this machine ----------------------------------------------------

export interface SmallNetOptions {
  /** One sample's shape [C, H, W], e.g. [1, 28, 28], [3, 32, 32], [2, 34, 34]. */
  inputShape: number[]
  classes: number
  /** Default 'dsnn' (train with DST; evaluate in fsnn or dsnn mode). */
  family?: ZooFamily
  /**
   * Residual blocks per stage, or a total spread over the stages (earlier stages take the
   * remainder: 10 over 3 stages is [4, 3, 3]). Default [2, 2, 2].
   */
  blocks?: number | number[]
  /** Channels per stage (planes for bottlenecks); default 16, 32, 64, ... one per stage. */
  widths?: number[]
  /** Stem channels; default widths[0]. */
  stemChannels?: number
  /** Default 'basic'. */
  kind?: BlockKind
  neuron?: ZooNeuron
  connect?: DualConnect | Connect
  zeroInit?: boolean
  aap?: boolean
  /** Default 4. */
  timeSteps?: number
  /** Default 'direct'. */
  encoding?: Encoding
}

const SMALL_KEYS = [
  'inputShape',
  'classes',
  'family',
  'blocks',
  'widths',
  'stemChannels',
  'kind',
  'neuron',
  'connect',
  'zeroInit',
  'aap',
  'timeSteps',
  'encoding',
]

/** Splits `total` blocks over `stages` stages, earlier stages first. */
export function spreadBlocks(total: number, stages: number): number[] {
  posInt('spreadBlocks total', total)
  posInt('spreadBlocks stages', stages)
  if (total < stages) throw argError('spreadBlocks total', `at least one block per stage (>= ${stages})`, total)
  return Array.from({ length: stages }, (_, i) => Math.floor(total / stages) + (i < total % stages ? 1 : 0))
}

/**
 * A CIFAR-style residual SNN for small inputs: stem `conv3x3 s1-BN-SN` (no max pooling), then
 * stages of residual blocks (stage i > 0 starts with a stride-2 downsampling block), GAP + FC.
 * The same layout for the three families, so depth can be compared: Spiking ResNet vs FSNN
 * (DST: family 'dsnn', evaluated in fsnn mode) vs DSNN (dsnn mode).
 */
export function smallDsnn(options: SmallNetOptions): ZooNet {
  const fn = 'smallDsnn'
  if (options === undefined) throw argError(`${fn} options`, 'an object with inputShape and classes', options)
  const o = checkOptions(fn, options, SMALL_KEYS)
  const inputShape = checkInputShape(`${fn} inputShape`, o.inputShape)
  const classes = posInt(`${fn} classes`, o.classes)
  const family = oneOf(`${fn} family`, o.family, FAMILIES, 'dsnn')
  const kind = oneOf<BlockKind>(`${fn} kind`, o.kind, ['basic', 'bottleneck'], 'basic')
  const widthsGiven = o.widths === undefined ? undefined : posIntList(`${fn} widths`, o.widths)
  let blocks: number[]
  if (o.blocks === undefined) {
    blocks = widthsGiven ? widthsGiven.map(() => 2) : [2, 2, 2]
  } else if (typeof o.blocks === 'number') {
    const stages = widthsGiven?.length ?? 3
    posInt(`${fn} blocks`, o.blocks)
    if (o.blocks < stages) throw argError(`${fn} blocks`, `at least one block per stage (>= ${stages})`, o.blocks)
    blocks = spreadBlocks(o.blocks, stages)
  } else {
    blocks = posIntList(`${fn} blocks`, o.blocks, widthsGiven?.length)
  }
  const widths = widthsGiven ?? blocks.map((_, i) => 16 * 2 ** i)
  const stemChannels = posInt(`${fn} stemChannels`, o.stemChannels ?? widths[0])
  const sn = neuronFactory(`${fn} neuron`, o.neuron, () => ifNode())
  const connect = connectFor(fn, family, o.connect, 'iand', 'add')
  const zeroInit = bool(`${fn} zeroInit`, o.zeroInit, true)
  if (family !== 'dsnn' && o.aap !== undefined)
    throw argError(`${fn} aap`, 'to be omitted unless family is "dsnn"', o.aap)
  const aap = bool(`${fn} aap`, o.aap, true)
  const timeSteps = posInt(`${fn} timeSteps`, o.timeSteps ?? 4)
  const encoding = oneOf<Encoding>(`${fn} encoding`, o.encoding, ['direct', 'sequence'], 'direct')
  const stem = [conv2d(inputShape[0], stemChannels, 3, { padding: 1, bias: false }), batchNorm2d(stemChannels), sn()]
  const { stages, features } = resnetStages({
    family,
    kind,
    stemChannels,
    planes: widths,
    blocks,
    sn,
    connect,
    zeroInit,
  })
  return {
    name: `small-${family}-${blocks.join('-')}`,
    inputShape,
    classes,
    timeSteps,
    encoding,
    layers: [...stem, ...trunk(family, stages, features, classes, aap)],
    blocks: stages.length,
  }
}
