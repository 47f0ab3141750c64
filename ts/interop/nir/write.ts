// dualstream spec + weights -> NIR graph. The model given is already deployable: the
// full-spike network (no AAP) with its BNs folded; write() walks its spec and emits one or
// more NIR nodes per layer, named after the layer's path (`layers.3`,
// `layers.4.stages.0.branch.2`), so every node maps back to its tensors.

import type { NamedTensor } from '../../checkpoint'
import { DualstreamError } from '../../errors'
import type { DualStage, LayerSpec, ModelSpec, NeuronParams, PoolSpec } from '../../spec'
import type { NirGraph, NodeWithMeta, Tensor } from './graph'
import { DEFAULT_DT, INSTEAD } from './primitives'

export interface NirWriteOptions {
  /** Seconds per simulation step (default 1e-4, SpikingJelly's). */
  dt?: number
}

/** A signal in the graph: the node producing it, its shape per sample, whether it is 0/1 only. */
interface Signal {
  node: string
  shape: number[]
  spikes: boolean
}

const full = (shape: number[], value: number): Tensor => ({
  shape,
  data: new Float32Array(shape.reduce((a, b) => a * b, 1)).fill(value),
})

/** The largest f32 below `x`. */
function below(x: number): number {
  const f = new Float32Array([Math.fround(x)])
  const bits = new Int32Array(f.buffer)
  if (f[0] === 0) return -1.401298464324817e-45
  bits[0] += f[0] > 0 ? -1 : 1
  return f[0]
}

const refuse = (layer: string, what: string, instead: string) =>
  new DualstreamError('ERR_SPEC', `${layer}: ${what} has no NIR equivalent; ${instead}`)

/** NIR has no attention primitive and no channels-last token layout. */
const SPIKING_TRANSFORMER = 'spiking transformers are not exported to NIR; save a checkpoint (safetensors) instead'

function outSize(n: number, k: number, s: number, p: number, d = 1): number {
  return Math.floor((n + 2 * p - d * (k - 1) - 1) / s) + 1
}

/** Ceil-mode output size (PyTorch: the last window must start inside the input or left padding). */
function poolOutSize(n: number, k: number, s: number, p: number): number {
  const out = Math.ceil((n + 2 * p - k) / s) + 1
  return (out - 1) * s >= n + p ? out - 1 : out
}

class Writer {
  readonly nodes = new Map<string, NodeWithMeta>()
  readonly edges: [string, string][] = []

  constructor(
    private readonly tensors: Map<string, NamedTensor>,
    private readonly dt: number,
  ) {}

  tensor(name: string): Tensor {
    const t = this.tensors.get(name)
    if (!t) throw new DualstreamError('ERR_STATE', `toNir: the model has no tensor ${name}`)
    return { shape: t.shape, data: t.data }
  }

  add(name: string, node: NodeWithMeta, inputs: Signal[]): void {
    if (this.nodes.has(name)) throw new DualstreamError('ERR_INTERNAL', `toNir: node ${name} written twice`)
    this.nodes.set(name, node)
    for (const i of inputs) this.edges.push([i.node, name])
  }

  neuron(path: string, kind: 'if' | 'lif' | 'plif', p: NeuronParams, inputs: Signal[], shape: number[]): Signal {
    if (p.vReset === null)
      throw refuse(`${path} (${kind})`, 'a soft reset (vReset null: subtract the threshold)', INSTEAD.softReset)
    // NIR fires when v > v_threshold; dualstream (as SpikingJelly) when v >= V_th. In f32 the
    // two agree exactly when v_threshold is the largest f32 below V_th, which also keeps the
    // structural ties (a Spiking ResNet block's silent branch gives SN_res exactly 0 + 1).
    const vThreshold = full(shape, below(p.vThreshold))
    const vReset = full(shape, p.vReset)
    if (kind === 'if') {
      this.add(path, { type: 'IF', r: full(shape, 1 / this.dt), vThreshold, vReset }, inputs)
    } else {
      let tau = p.tau
      let metadata: Record<string, number> | undefined
      if (kind === 'plif') {
        const w = this.tensor(`${path}.w`).data[0]
        tau = 1 + Math.exp(-w) // 1 / sigmoid(w)
        metadata = { dualstream_plif_w: w }
      }
      this.add(
        path,
        {
          type: 'LIF',
          tau: full(shape, tau * this.dt),
          r: full(shape, p.decayInput ? 1 : tau),
          vLeak: full(shape, p.vReset),
          vThreshold,
          vReset,
          ...(metadata ? { metadata } : {}),
        },
        inputs,
      )
    }
    return { node: path, shape, spikes: true }
  }

  layer(path: string, l: LayerSpec, x: Signal): Signal {
    const label = `${path} (${l.type})`
    switch (l.type) {
      case 'conv2d': {
        if (x.shape.length !== 3) throw new DualstreamError('ERR_SPEC', `${label}: expects a [C, H, W] input`)
        const [, h, w] = x.shape
        const weight = this.tensor(`${path}.weight`)
        const bias = l.bias ? this.tensor(`${path}.bias`) : full([l.outChannels], 0)
        this.add(
          path,
          {
            type: 'Conv2d',
            inputShape: [h, w],
            weight,
            bias,
            stride: l.stride,
            padding: l.padding,
            dilation: l.dilation,
            groups: l.groups,
          },
          [x],
        )
        const oh = outSize(h, l.kernelSize[0], l.stride[0], l.padding[0], l.dilation[0])
        const ow = outSize(w, l.kernelSize[1], l.stride[1], l.padding[1], l.dilation[1])
        return { node: path, shape: [l.outChannels, oh, ow], spikes: false }
      }
      case 'linear': {
        if (x.shape.length !== 1)
          throw new DualstreamError('ERR_SPEC', `${label}: expects a flat input; add a flatten before it`)
        const weight = this.tensor(`${path}.weight`)
        this.add(
          path,
          l.bias ? { type: 'Affine', weight, bias: this.tensor(`${path}.bias`) } : { type: 'Linear', weight },
          [x],
        )
        return { node: path, shape: [l.outFeatures], spikes: false }
      }
      case 'avgPool2d':
      case 'maxPool2d':
        return this.pool(path, l, x)
      case 'globalAvgPool':
        return this.gap(path, x)
      case 'flatten':
        return this.flatten(path, x)
      case 'dropout':
        return x
      case 'if':
      case 'lif':
      case 'plif':
        return this.neuron(path, l.type, l, [x], x.shape)
      case 'sewBlock': {
        const s = this.list(`${path}.branch`, l.branch, x)
        const o = l.shortcut ? this.list(`${path}.shortcut`, l.shortcut, x) : x
        return this.join(path, l.connect, s, o)
      }
      case 'spikingResnetBlock': {
        const s = this.list(`${path}.branch`, l.branch, x)
        const o = l.shortcut ? this.list(`${path}.shortcut`, l.shortcut, x) : x
        return this.neuron(`${path}.residual`, 'if', l.residualNeuron, [s, o], s.shape)
      }
      case 'dualStream':
        if (l.aap) throw new DualstreamError('ERR_INTERNAL', `${label}: the AAP must be removed before export`)
        if (l.headPool === 'tokens') throw refuse(label, 'a head on token streams', SPIKING_TRANSFORMER)
        return this.trunk(path, l.stages, l.headPool ?? 'gap', l.head.bias, x)
      case 'batchNorm1d':
      case 'tokens':
      case 'tokenMean':
      case 'spikingAttention':
        throw refuse(label, 'a spiking-transformer layer', SPIKING_TRANSFORMER)
      case 'batchNorm2d':
        throw refuse(label, 'a batch norm that does not follow a conv', INSTEAD.batchNorm2d)
      case 'relu':
        throw refuse(label, 'ReLU', INSTEAD.relu)
    }
  }

  list(path: string, layers: LayerSpec[], x: Signal): Signal {
    return layers.reduce((s, l, i) => this.layer(`${path}.${i}`, l, s), x)
  }

  pool(path: string, l: PoolSpec, x: Signal): Signal {
    const { type, kernelSize: k, stride: s, padding: p } = l
    const label = `${path} (${type})`
    const [c, h, w] = x.shape
    const shape = [c, outSize(h, k[0], s[0], p[0]), outSize(w, k[1], s[1], p[1])]
    if (l.ceilMode && (poolOutSize(h, k[0], s[0], p[0]) !== shape[1] || poolOutSize(w, k[1], s[1], p[1]) !== shape[2]))
      throw refuse(
        label,
        `ceil-mode pooling with a partial last window (on ${h}x${w})`,
        'use ceilMode: false or an input size the windows tile (NIR pooling has no ceil mode)',
      )
    if (type === 'avgPool2d') {
      if (p[0] !== 0 || p[1] !== 0)
        throw refuse(
          label,
          'average pooling with padding',
          'use padding 0 (NIR does not say whether padded positions count in the average)',
        )
      this.add(path, { type: 'AvgPool2d', kernelSize: k, stride: s, padding: p }, [x])
      return { node: path, shape, spikes: false }
    }
    if (!x.spikes) throw refuse(label, 'max pooling of non-spike values', INSTEAD.maxPool2d)
    // On 0/1 inputs the window's max is 1 exactly when the window's sum is at least 1; zero
    // padding adds nothing to the sum, as -inf padding adds nothing to the max.
    this.add(`${path}.sum`, { type: 'SumPool2d', kernelSize: k, stride: s, padding: p }, [x])
    this.add(path, { type: 'Threshold', threshold: full(shape, 0.5) }, [{ node: `${path}.sum`, shape, spikes: false }])
    return { node: path, shape, spikes: true }
  }

  gap(path: string, x: Signal): Signal {
    const [c, h, w] = x.shape
    this.add(`${path}.pool`, { type: 'AvgPool2d', kernelSize: [h, w], stride: [h, w], padding: [0, 0] }, [x])
    this.add(path, { type: 'Flatten', inputType: [c, 1, 1], startDim: 0, endDim: -1 }, [
      { node: `${path}.pool`, shape: [c, 1, 1], spikes: false },
    ])
    return { node: path, shape: [c], spikes: false }
  }

  flatten(path: string, x: Signal): Signal {
    this.add(path, { type: 'Flatten', inputType: x.shape, startDim: 0, endDim: -1 }, [x])
    return { node: path, shape: [x.shape.reduce((a, b) => a * b, 1)], spikes: x.spikes }
  }

  /** `g(S, O)` with spikes in and out: sums of 0/1 values compared with a threshold. */
  join(path: string, connect: string, s: Signal, o: Signal): Signal {
    const label = `${path} (join ${connect})`
    if (s.shape.join() !== o.shape.join())
      throw new DualstreamError('ERR_SPEC', `${label}: branch [${s.shape}] and shortcut [${o.shape}] differ in shape`)
    const shape = s.shape
    const out = `${path}.join`
    if (connect === 'add') {
      this.add(out, { type: 'Scale', scale: full(shape, 1) }, [s, o])
      return { node: out, shape, spikes: false }
    }
    if (!s.spikes || !o.spikes)
      throw refuse(
        label,
        `the spike function ${connect.toUpperCase()} of non-spike inputs (${!s.spikes ? 'the branch' : 'the shortcut'} does not end with a neuron)`,
        'end the branch and the shortcut with a neuron',
      )
    const sig = (node: string): Signal => ({ node, shape, spikes: false })
    switch (connect) {
      case 'and':
        this.add(out, { type: 'Threshold', threshold: full(shape, 1.5) }, [s, o])
        break
      case 'or':
        this.add(out, { type: 'Threshold', threshold: full(shape, 0.5) }, [s, o])
        break
      case 'iand':
        this.add(`${out}.not`, { type: 'Scale', scale: full(shape, -1) }, [s])
        this.add(out, { type: 'Threshold', threshold: full(shape, 0.5) }, [sig(`${out}.not`), o])
        break
      case 'xor':
        this.add(`${out}.or`, { type: 'Threshold', threshold: full(shape, 0.5) }, [s, o])
        this.add(`${out}.and`, { type: 'Threshold', threshold: full(shape, 1.5) }, [s, o])
        this.add(`${out}.not`, { type: 'Scale', scale: full(shape, -1) }, [sig(`${out}.and`)])
        this.add(out, { type: 'Threshold', threshold: full(shape, 0.5) }, [sig(`${out}.or`), sig(`${out}.not`)])
        break
      default:
        throw new DualstreamError('ERR_SPEC', `${label}: unknown join`)
    }
    return { node: out, shape, spikes: true }
  }

  trunk(path: string, stages: DualStage[], headPool: 'gap' | 'flatten', bias: boolean, x: Signal): Signal {
    let o = x
    stages.forEach((st, i) => {
      const p = `${path}.stages.${i}`
      if (st.type !== 'block') {
        o = this.pool(p, st, o)
        return
      }
      const s = this.list(`${p}.branch`, st.branch, o)
      const sc = st.shortcut ? this.list(`${p}.shortcut`, st.shortcut, o) : o
      o =
        st.connect === 'spikingResnet'
          ? this.neuron(`${p}.residual`, 'if', st.residualNeuron!, [s, sc], s.shape)
          : this.join(p, st.connect, s, sc)
    })
    const pooled = headPool === 'gap' ? this.gap(`${path}.headPool`, o) : this.flatten(`${path}.headPool`, o)
    const headFeatures = this.tensor(`${path}.head.weight`).shape[0]
    return this.layer(
      `${path}.head`,
      { type: 'linear', inFeatures: pooled.shape[0], outFeatures: headFeatures, bias },
      pooled,
    )
  }
}

/**
 * The NIR graph of a deployable model: `spec` and `tensors` of the full-spike network with its
 * BNs folded (`Model.toNir` prepares them). The graph's metadata keeps the spec, so that
 * `readNir` rebuilds exactly this model.
 */
export function specToNir(spec: ModelSpec, tensors: NamedTensor[], options: NirWriteOptions = {}): NirGraph {
  const dt = options.dt ?? DEFAULT_DT
  if (!(typeof dt === 'number' && Number.isFinite(dt) && dt > 0)) {
    throw new DualstreamError('ERR_ARG', `toNir dt: expected a positive number of seconds, received ${dt}`)
  }
  const w = new Writer(new Map(tensors.map((t) => [t.name, t])), dt)
  const input: Signal = { node: 'input', shape: [...spec.inputShape], spikes: false }
  w.nodes.set('input', { type: 'Input', shape: [...spec.inputShape] })
  const out = w.list('layers', spec.layers, input)
  w.add('output', { type: 'Output', shape: out.shape }, [out])
  return {
    nodes: w.nodes,
    edges: w.edges,
    metadata: { dualstream_spec: JSON.stringify(spec), dualstream_dt: String(dt) },
  }
}
