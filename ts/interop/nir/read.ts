// NIR graph -> dualstream spec + weights. Two cases:
// - a graph written by dualstream (its metadata holds the spec): the spec is taken from it and
//   every conv/affine node gives its layer's weights by name, so the model is rebuilt exactly,
//   joins and all;
// - any other graph (SpikingJelly, snnTorch, Norse...): a chain Input -> ... -> Output of
//   Conv2d, Affine/Linear, IF/LIF, AvgPool2d, Flatten, and SumPool2d + Threshold (max pooling
//   of spikes), read with the dt convention of primitives.ts. Anything else is refused by name.

import type { NamedTensor } from '../../checkpoint'
import { DualstreamError } from '../../errors'
import type { LayerSpec, ModelSpec, NeuronParams } from '../../spec'
import type { NirGraph, NodeWithMeta, Tensor } from './graph'
import { DEFAULT_DT } from './primitives'

export interface NirReadOptions {
  /** Seconds per step the writer used: 1e-4 for SpikingJelly and snnTorch (default); Norse 1.1.0 writes tau = dt * tau_mem, so its files need dt squared (1e-6 for its default 1e-3). */
  dt?: number
  /** Simulation steps T of the model (default 4; a dualstream file keeps its own). */
  timeSteps?: number
}

export interface ImportedModel {
  spec: ModelSpec
  tensors: NamedTensor[]
}

function uniform(file: string, node: string, field: string, t: Tensor): number {
  const v = t.data[0]
  for (let i = 1; i < t.data.length; i++) {
    if (t.data[i] !== v)
      throw new DualstreamError(
        'ERR_SPEC',
        `${file}: NIR node ${node}: ${field} differs between neurons; dualstream neurons share one value per layer`,
      )
  }
  return v
}

const close = (a: number, b: number) => Math.abs(a - b) <= 1e-6 * Math.max(Math.abs(a), Math.abs(b))

function fromDualstream(file: string, graph: NirGraph): ImportedModel {
  let spec: ModelSpec
  try {
    spec = JSON.parse(String(graph.metadata.dualstream_spec)) as ModelSpec
  } catch (err) {
    throw new DualstreamError('ERR_FORMAT', `${file}: metadata dualstream_spec is not JSON: ${(err as Error).message}`)
  }
  const tensors: NamedTensor[] = []
  for (const [name, n] of graph.nodes) {
    if (n.type === 'Conv2d') {
      tensors.push({ name: `${name}.weight`, ...n.weight })
      tensors.push({ name: `${name}.bias`, ...n.bias })
    } else if (n.type === 'Affine') {
      tensors.push({ name: `${name}.weight`, ...n.weight })
      tensors.push({ name: `${name}.bias`, ...n.bias })
    } else if (n.type === 'Linear') {
      tensors.push({ name: `${name}.weight`, ...n.weight })
    } else if (n.type === 'LIF' && n.metadata?.dualstream_plif_w !== undefined) {
      tensors.push({ name: `${name}.w`, shape: [1], data: Float32Array.of(Number(n.metadata.dualstream_plif_w)) })
    } else if (n.type === 'Unsupported') {
      throw new DualstreamError(
        'ERR_SPEC',
        `${file}: NIR node ${name} is a ${n.nirType}, which dualstream cannot import`,
      )
    }
  }
  return { spec, tensors }
}

function neuronOf(file: string, name: string, n: NodeWithMeta, dt: number): LayerSpec {
  const base = { detachReset: true, surrogate: { type: 'atan', alpha: 2 } } as const
  if (n.type === 'IF') {
    const r = uniform(file, name, 'r', n.r)
    if (!close(r * dt, 1))
      throw new DualstreamError(
        'ERR_SPEC',
        `${file}: NIR node ${name} (IF): r = ${r} is not 1/dt = ${1 / dt}; pass the writer's dt (e.g. { dt: ${1 / r} })`,
      )
    const p: NeuronParams = {
      ...base,
      tau: 2,
      decayInput: true,
      vThreshold: uniform(file, name, 'v_threshold', n.vThreshold),
      vReset: uniform(file, name, 'v_reset', n.vReset),
    }
    return { type: 'if', ...p }
  }
  if (n.type !== 'LIF') throw new DualstreamError('ERR_INTERNAL', `${name} is not a neuron`)
  const tau = uniform(file, name, 'tau', n.tau) / dt
  if (!(tau > 1))
    throw new DualstreamError(
      'ERR_SPEC',
      `${file}: NIR node ${name} (LIF): tau/dt = ${tau} must be > 1 (is dt = ${dt} the writer's? Norse 1.1.0 files need its dt squared, 1e-6)`,
    )
  const r = uniform(file, name, 'r', n.r)
  const vReset = uniform(file, name, 'v_reset', n.vReset)
  const vLeak = uniform(file, name, 'v_leak', n.vLeak)
  if (!close(vLeak, vReset) && !(vLeak === 0 && vReset === 0))
    throw new DualstreamError(
      'ERR_SPEC',
      `${file}: NIR node ${name} (LIF): v_leak ${vLeak} differs from v_reset ${vReset}; dualstream's LIF leaks toward v_reset`,
    )
  let decayInput: boolean
  if (close(r, 1)) decayInput = true
  else if (close(r, tau)) decayInput = false
  else
    throw new DualstreamError(
      'ERR_SPEC',
      `${file}: NIR node ${name} (LIF): r = ${r} is neither 1 (input decays) nor tau/dt = ${tau} (it does not)`,
    )
  const p: NeuronParams = {
    ...base,
    tau: Math.fround(tau),
    decayInput,
    vThreshold: uniform(file, name, 'v_threshold', n.vThreshold),
    vReset,
  }
  return { type: 'lif', ...p }
}

function fromChain(file: string, graph: NirGraph, options: NirReadOptions): ImportedModel {
  const dt = options.dt ?? DEFAULT_DT
  const next = new Map<string, string[]>()
  const prev = new Map<string, string[]>()
  for (const [a, b] of graph.edges) {
    next.set(a, [...(next.get(a) ?? []), b])
    prev.set(b, [...(prev.get(b) ?? []), a])
  }
  const inputs = [...graph.nodes].filter(([, n]) => n.type === 'Input')
  if (inputs.length !== 1)
    throw new DualstreamError(
      'ERR_SPEC',
      `${file}: the NIR graph has ${inputs.length} Input nodes; dualstream takes one`,
    )
  const [inputName, inputNode] = inputs[0]
  const inputShape = (inputNode as { shape: number[] }).shape
  const layers: LayerSpec[] = []
  const tensors: NamedTensor[] = []
  let at = inputName
  let shape = [...inputShape]
  const seen = new Set<string>()
  for (;;) {
    const outs = next.get(at) ?? []
    if (outs.length !== 1)
      throw new DualstreamError(
        'ERR_SPEC',
        `${file}: NIR node ${at} feeds ${outs.length} nodes; only chains are imported (branching graphs only when written by dualstream)`,
      )
    const name = outs[0]
    if (seen.has(name)) throw new DualstreamError('ERR_SPEC', `${file}: the NIR graph has a cycle through ${name}`)
    seen.add(name)
    if ((prev.get(name) ?? []).length !== 1)
      throw new DualstreamError('ERR_SPEC', `${file}: NIR node ${name} sums several inputs; only chains are imported`)
    const n = graph.nodes.get(name)!
    const path = `layers.${layers.length}`
    if (n.type === 'Output') break
    switch (n.type) {
      case 'Conv2d': {
        const [cout, cinG, kh, kw] = n.weight.shape
        const oh = Math.floor((shape[1] + 2 * n.padding[0] - n.dilation[0] * (kh - 1) - 1) / n.stride[0]) + 1
        const ow = Math.floor((shape[2] + 2 * n.padding[1] - n.dilation[1] * (kw - 1) - 1) / n.stride[1]) + 1
        layers.push({
          type: 'conv2d',
          inChannels: cinG * n.groups,
          outChannels: cout,
          kernelSize: [kh, kw],
          stride: n.stride,
          padding: n.padding,
          dilation: n.dilation,
          groups: n.groups,
          bias: true,
        })
        tensors.push({ name: `${path}.weight`, ...n.weight }, { name: `${path}.bias`, ...n.bias })
        shape = [cout, oh, ow]
        break
      }
      case 'Affine':
      case 'Linear': {
        const [out, inp] = n.weight.shape
        layers.push({ type: 'linear', inFeatures: inp, outFeatures: out, bias: n.type === 'Affine' })
        tensors.push({ name: `${path}.weight`, ...n.weight })
        if (n.type === 'Affine') tensors.push({ name: `${path}.bias`, ...n.bias })
        shape = [out]
        break
      }
      case 'IF':
      case 'LIF':
        layers.push(neuronOf(file, name, n, dt))
        break
      case 'AvgPool2d':
        layers.push({ type: 'avgPool2d', kernelSize: n.kernelSize, stride: n.stride, padding: n.padding })
        shape = [
          shape[0],
          Math.floor((shape[1] + 2 * n.padding[0] - n.kernelSize[0]) / n.stride[0]) + 1,
          Math.floor((shape[2] + 2 * n.padding[1] - n.kernelSize[1]) / n.stride[1]) + 1,
        ]
        break
      case 'SumPool2d': {
        const after = (next.get(name) ?? [])[0]
        const t = after === undefined ? undefined : graph.nodes.get(after)
        if (
          t?.type !== 'Threshold' ||
          !t.threshold.data.every((v) => v > 0 && v < 1) ||
          (next.get(name) ?? []).length !== 1
        )
          throw new DualstreamError(
            'ERR_SPEC',
            `${file}: NIR node ${name} (SumPool2d) is imported only as max pooling of spikes (followed by a Threshold in (0, 1)); dualstream has no sum pooling`,
          )
        layers.push({ type: 'maxPool2d', kernelSize: n.kernelSize, stride: n.stride, padding: n.padding })
        shape = [
          shape[0],
          Math.floor((shape[1] + 2 * n.padding[0] - n.kernelSize[0]) / n.stride[0]) + 1,
          Math.floor((shape[2] + 2 * n.padding[1] - n.kernelSize[1]) / n.stride[1]) + 1,
        ]
        seen.add(after)
        at = after
        continue
      }
      case 'Flatten':
        layers.push({ type: 'flatten' })
        shape = [shape.reduce((a, b) => a * b, 1)]
        break
      default:
        throw new DualstreamError(
          'ERR_SPEC',
          `${file}: NIR node ${name} is a ${n.type === 'Unsupported' ? n.nirType : n.type}, which dualstream imports only in graphs it wrote (supported: Conv2d, Affine, Linear, IF, LIF, AvgPool2d, Flatten, SumPool2d + Threshold)`,
        )
    }
    at = name
  }
  const timeSteps = options.timeSteps ?? 4
  return { spec: { timeSteps, inputShape, encoding: 'direct', layers }, tensors }
}

/** The spec and weights of the model a NIR graph describes (see the module comment). */
export function nirToSpec(file: string, graph: NirGraph, options: NirReadOptions = {}): ImportedModel {
  if (typeof graph.metadata.dualstream_spec === 'string') {
    const imported = fromDualstream(file, graph)
    if (options.timeSteps !== undefined) imported.spec.timeSteps = options.timeSteps
    return imported
  }
  return fromChain(file, graph, options)
}
