// The reference workloads W1 and W2 (and their dual-stream variants), defined once. `benches/compare/spikingjelly_workloads.py`
// builds the same networks in SpikingJelly; keep both in step (shapes, neurons, blocks, optimizer).
//   W1 static: [T=4, N=32, 1, 28, 28] real values in [0, 1)
//   W2 events: [T=8, N=8, 2, 64, 64] binary spikes at 15 % density
//   SF static: [T=4, N=32, 1, 28, 28], the zoo's small Spikformer (depth 2, dim 64, 4 heads, MLP
//      ratio 2, patch 4: 49 tokens), ADD residuals as SpikingJelly's `model.spikformer`
//   SF384 static: [T=4, N=8, 3, 32, 32], Spikformer-4-384 (12 heads, MLP ratio 4: 64 tokens)
// LIF tau 2, ATan, detach_reset; SEW blocks with IAND (conv3x3-BN-LIF-conv3x3-BN-LIF, no conv
// bias); SGD with momentum; cross-entropy on the time-mean output. The `dst` variants replace the
// SEW blocks by dual-stream blocks (AAP on) and end with the trunk's GAP + FC.

import type { Encoding, LayerSpec, Model } from '../ts/index'
import {
  batchNorm2d,
  conv2d,
  dsnn7b,
  dualBasicBlock,
  dualStream,
  flatten,
  lif,
  linear,
  maxPool2d,
  sequential,
  sew7b,
  sewBasicBlock,
  sgd,
  spikformer,
  surrogate,
} from '../ts/index'

export interface Workload {
  name: string
  timeSteps: number
  batch: number
  /** One sample's shape (without T for direct encoding; with the leading T dropped for sequence). */
  sampleShape: number[]
  encoding: Encoding
  classes: number
  layers: LayerSpec[]
  /** Spike density of a synthetic binary input, or undefined for uniform [0, 1) values. */
  inputDensity?: number
}

const neuron = () => lif({ tau: 2, detachReset: true, surrogate: surrogate.atan(2) })
const sew = (c: number) => sewBasicBlock(c, { connect: 'iand', neuron })
const dual = (cin: number, cout: number) => dualBasicBlock(cin, cout, { connect: 'iand', neuron })
const stem = (cin: number, cout: number) => [
  conv2d(cin, cout, 3, { padding: 1, bias: false }),
  batchNorm2d(cout),
  neuron(),
]

/** Workload `name`, or its dual-stream variant `name-dst`. */
function named(name: string, dst: boolean, workload: Omit<Workload, 'name'>): Workload {
  return { name: dst ? `${name}-dst` : name, ...workload }
}

export function w1(dst = false, timeSteps = 4, batch = 32): Workload {
  const layers = dst
    ? [
        ...stem(1, 32),
        dualStream({ stages: [dual(32, 32), maxPool2d(2), dual(32, 64), dual(64, 64), maxPool2d(2)], classes: 10 }),
      ]
    : [...stem(1, 32), sew(32), maxPool2d(2), ...stem(32, 64), sew(64), maxPool2d(2), flatten(), linear(3136, 10)]
  return named('W1', dst, { timeSteps, batch, sampleShape: [1, 28, 28], encoding: 'direct', classes: 10, layers })
}

export function w2(dst = false, timeSteps = 8, batch = 8): Workload {
  const six = <T>(f: () => T[]) => Array.from({ length: 6 }, f).flat()
  const layers = dst
    ? [...stem(2, 32), dualStream({ stages: six(() => [dual(32, 32), maxPool2d(2)]), classes: 11 })]
    : [...stem(2, 32), ...six(() => [sew(32), maxPool2d(2)]), flatten(), linear(32, 11)]
  const input = { sampleShape: [2, 64, 64], encoding: 'sequence' as const, classes: 11, inputDensity: 0.15 }
  return named('W2', dst, { timeSteps, batch, ...input, layers })
}

/** Spikformer with SpikingJelly's ADD residuals: the zoo's small one (SF) or Spikformer-4-384 (SF384). */
export function sf(large = false, timeSteps = 4, batch = large ? 8 : 32): Workload {
  const net = large
    ? spikformer({ inputShape: [3, 32, 32], classes: 10, timeSteps })
    : spikformer({ inputShape: [1, 28, 28], classes: 10, timeSteps, depth: 2, dim: 64, heads: 4, mlpRatio: 2 })
  const sampleShape = net.inputShape
  return {
    name: large ? 'SF384' : 'SF',
    timeSteps,
    batch,
    sampleShape,
    encoding: 'direct',
    classes: 10,
    layers: net.layers,
  }
}

export const WORKLOADS = [w1(), w2(), w1(true), w2(true), sf(), sf(true)]

/**
 * Binary input density of W3: the fraction of [T = 16, 2, H, W] frame values that hold at least
 * one event, measured with `npm run bench:memory -- --density` on the shared DVXplorer sample
 * recording (AEDAT 4.0, 320 x 240, 111,954 events) framed by event count into 16 frames (0.0340).
 */
export const W3_DENSITY = 0.034

/**
 * W3 (memory and the 7B-Net): the zoo's `dsnn7b` (`W3-dst`) or `sew7b` (`W3`, the SpikingJelly
 * SEW 7B-Net) on DVS-like binary frames [T = 16, N = 8, 2, 128, 128] at {@link W3_DENSITY}.
 * Not in {@link WORKLOADS}: the SpikingJelly comparison does not build it.
 */
export function w3(dst = false, timeSteps = 16, batch = 8): Workload {
  const net = (dst ? dsnn7b : sew7b)({ inputShape: [2, 128, 128], timeSteps })
  return named('W3', dst, {
    timeSteps,
    batch,
    sampleShape: net.inputShape,
    encoding: 'sequence',
    classes: net.classes,
    layers: net.layers,
    inputDensity: W3_DENSITY,
  })
}

export const W3_WORKLOADS = [w3(), w3(true)]

/** A reference workload by name, optionally with another T or batch size (for the scaling runs). */
export function workload(name: string, timeSteps?: number, batch?: number): Workload {
  if (name === 'W3' || name === 'W3-dst') return w3(name === 'W3-dst', timeSteps ?? 16, batch ?? 8)
  const base = WORKLOADS.find((x) => x.name === name)
  if (!base) throw new Error(`unknown workload ${name}: expected one of ${WORKLOADS.map((w) => w.name).join(', ')}`)
  if (name.startsWith('SF')) return sf(name === 'SF384', timeSteps ?? base.timeSteps, batch ?? base.batch)
  const make = name.startsWith('W1') ? w1 : w2
  return make(name.endsWith('-dst'), timeSteps ?? base.timeSteps, batch ?? base.batch)
}

/** The workload's network, built, with the SGD (lr 0.01, momentum 0.9) the benches train it with. */
export function trainableModel(w: Workload): Model {
  const model = sequential(w.layers, {
    timeSteps: w.timeSteps,
    inputShape: w.sampleShape,
    encoding: w.encoding,
    seed: 1,
  })
  model.configureTraining(sgd({ lr: 0.01, momentum: 0.9 }))
  return model
}

/** Deterministic inputs and labels for a workload (the comparison script makes the same ones). */
export function syntheticBatch(w: Workload, seed = 1): { x: Float32Array; y: Uint32Array } {
  let s = seed >>> 0
  const next = () => {
    // mulberry32
    s = (s + 0x6d2b79f5) >>> 0
    let t = s
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
  const per = w.sampleShape.reduce((a, b) => a * b, 1)
  const steps = w.encoding === 'sequence' ? w.timeSteps : 1
  const x = new Float32Array(steps * w.batch * per)
  for (let i = 0; i < x.length; i++) x[i] = w.inputDensity === undefined ? next() : next() < w.inputDensity ? 1 : 0
  const y = new Uint32Array(w.batch)
  for (let i = 0; i < w.batch; i++) y[i] = Math.floor(next() * w.classes)
  return { x, y }
}
