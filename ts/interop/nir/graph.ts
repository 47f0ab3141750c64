// NIR graphs in memory and on disk. The primitives are those of the `nir` Python package 1.0.x
// (its ir/*.py dataclasses); every node is stored as an HDF5 group with a `type` string and
// its fields, the graph as `node/{type, nodes, edges}` plus a `version` string at the root.
// Several edges into one node add their signals (NIR's rule), which is how residual joins and
// Spiking ResNet's `SN_res(F(x) + x)` are written.
import { DualstreamError } from '../../errors'
import { f32, group, type H5Value, i64, readH5, str, writeH5 } from './hdf5'

/** The `nir` release whose layout we write. */
export const NIR_VERSION = '1.0.8'

export interface Tensor {
  shape: number[]
  data: Float32Array
}

export type NirNode =
  | { type: 'Input'; shape: number[] }
  | { type: 'Output'; shape: number[] }
  | {
      type: 'Conv2d'
      inputShape: [number, number] | null
      weight: Tensor
      bias: Tensor
      stride: [number, number]
      padding: [number, number]
      dilation: [number, number]
      groups: number
    }
  | { type: 'Affine'; weight: Tensor; bias: Tensor }
  | { type: 'Linear'; weight: Tensor }
  | { type: 'Scale'; scale: Tensor }
  | { type: 'Threshold'; threshold: Tensor }
  | { type: 'IF'; r: Tensor; vThreshold: Tensor; vReset: Tensor }
  | { type: 'LIF'; tau: Tensor; r: Tensor; vLeak: Tensor; vThreshold: Tensor; vReset: Tensor }
  | {
      type: 'AvgPool2d' | 'SumPool2d'
      kernelSize: [number, number]
      stride: [number, number]
      padding: [number, number]
    }
  | { type: 'Flatten'; inputType: number[] | null; startDim: number; endDim: number }
  | { type: 'Unsupported'; nirType: string }

export type NodeWithMeta = NirNode & { metadata?: Record<string, string | number> }

export interface NirGraph {
  nodes: Map<string, NodeWithMeta>
  edges: [string, string][]
  metadata: Record<string, string | number>
}

const t = (x: Tensor): H5Value => f32(x.data, x.shape)

function metadataGroup(meta: Record<string, string | number> | undefined): Record<string, H5Value> {
  if (!meta || Object.keys(meta).length === 0) return {}
  const entries: Record<string, H5Value> = {}
  for (const [k, v] of Object.entries(meta)) entries[k] = typeof v === 'string' ? str(v) : f32([v], [])
  return { metadata: group(entries) }
}

function encodeNode(n: NodeWithMeta): H5Value {
  const meta = metadataGroup(n.metadata)
  return group({ type: str(n.type), ...nodeDatasets(n), ...meta })
}

/** The datasets of a node besides its type and metadata, in the order the `nir` package writes them. */
function nodeDatasets(n: NodeWithMeta): Record<string, H5Value> {
  switch (n.type) {
    case 'Input':
    case 'Output':
      return { shape: i64(n.shape) }
    case 'Conv2d':
      return {
        ...(n.inputShape ? { input_shape: i64(n.inputShape) } : {}),
        weight: t(n.weight),
        bias: t(n.bias),
        stride: i64(n.stride),
        padding: i64(n.padding),
        dilation: i64(n.dilation),
        groups: i64(n.groups),
      }
    case 'Affine':
      return { weight: t(n.weight), bias: t(n.bias) }
    case 'Linear':
      return { weight: t(n.weight) }
    case 'Scale':
      return { scale: t(n.scale) }
    case 'Threshold':
      return { threshold: t(n.threshold) }
    case 'IF':
      return { r: t(n.r), v_threshold: t(n.vThreshold), v_reset: t(n.vReset) }
    case 'LIF':
      return {
        tau: t(n.tau),
        r: t(n.r),
        v_leak: t(n.vLeak),
        v_threshold: t(n.vThreshold),
        v_reset: t(n.vReset),
      }
    case 'AvgPool2d':
    case 'SumPool2d':
      return {
        kernel_size: i64(n.kernelSize),
        stride: i64(n.stride),
        padding: i64(n.padding),
      }
    case 'Flatten':
      return {
        ...(n.inputType ? { input_type: i64(n.inputType) } : {}),
        start_dim: i64(n.startDim),
        end_dim: i64(n.endDim),
      }
    case 'Unsupported':
      throw new DualstreamError('ERR_INTERNAL', `cannot write the unsupported NIR node type ${n.nirType}`)
  }
}

/** Writes `graph` as a NIR file (the layout `nir.read` loads). */
export async function writeNirGraph(path: string, graph: NirGraph): Promise<void> {
  const nodes: Record<string, H5Value> = {}
  for (const [name, n] of graph.nodes) {
    if (name.includes('/')) throw new DualstreamError('ERR_INTERNAL', `NIR node name ${name} contains "/"`)
    nodes[name] = encodeNode(n)
  }
  await writeH5(path, {
    version: str(NIR_VERSION),
    node: group({
      type: str('NIRGraph'),
      nodes: group(nodes),
      edges: { kind: 'str', shape: [graph.edges.length, 2], data: graph.edges.flat() },
      ...metadataGroup(graph.metadata),
    }),
  })
}

// --- reading -----------------------------------------------------------------------------------

class Fields {
  constructor(
    readonly file: string,
    readonly name: string,
    readonly entries: Record<string, H5Value>,
  ) {}

  private get(key: string): H5Value {
    const v = this.entries[key]
    if (!v) throw new DualstreamError('ERR_FORMAT', `${this.file}: NIR node ${this.name} has no ${key}`)
    return v
  }
  has(key: string): boolean {
    return key in this.entries
  }
  /** `read(key)`, or null when the node has no `key`. */
  optional<T>(key: string, read: (this: Fields, key: string) => T): T | null {
    return this.has(key) ? read.call(this, key) : null
  }
  tensor(key: string): Tensor {
    const v = this.get(key)
    if (v.kind === 'f32') return { shape: v.shape, data: v.data }
    if (v.kind === 'i64') return { shape: v.shape, data: Float32Array.from(v.data) }
    throw new DualstreamError('ERR_FORMAT', `${this.file}: NIR node ${this.name}: ${key} is not numeric`)
  }
  ints(key: string): number[] {
    const v = this.get(key)
    if (v.kind === 'i64') return v.data
    if (v.kind === 'f32') return Array.from(v.data)
    throw new DualstreamError('ERR_FORMAT', `${this.file}: NIR node ${this.name}: ${key} is not an integer array`)
  }
  int(key: string): number {
    const xs = this.ints(key)
    if (xs.length !== 1)
      throw new DualstreamError('ERR_FORMAT', `${this.file}: NIR node ${this.name}: ${key} is not one integer`)
    return xs[0]
  }
  pair(key: string): [number, number] {
    const xs = this.ints(key)
    if (xs.length === 1) return [xs[0], xs[0]]
    if (xs.length !== 2)
      throw new DualstreamError('ERR_FORMAT', `${this.file}: NIR node ${this.name}: ${key} is not one or two integers`)
    return [xs[0], xs[1]]
  }
  string(key: string): string {
    const v = this.get(key)
    if (v.kind !== 'str')
      throw new DualstreamError('ERR_FORMAT', `${this.file}: NIR node ${this.name}: ${key} is not a string`)
    return v.data[0]
  }
  metadata(): Record<string, string | number> | undefined {
    const m = this.entries.metadata
    if (m?.kind !== 'group') return undefined
    const out: Record<string, string | number> = {}
    for (const [k, v] of Object.entries(m.entries)) {
      if (v.kind === 'str') out[k] = v.data[0]
      else if (v.kind === 'f32' || v.kind === 'i64') out[k] = Number(v.data[0])
    }
    return out
  }
}

/** A neuron node's threshold and reset voltage; a missing `v_reset` is zero. */
function thresholdAndReset(f: Fields): { vThreshold: Tensor; vReset: Tensor } {
  const vThreshold = f.tensor('v_threshold')
  const vReset = f.has('v_reset')
    ? f.tensor('v_reset')
    : { shape: vThreshold.shape, data: new Float32Array(vThreshold.data.length) }
  return { vThreshold, vReset }
}

function decodeNode(file: string, name: string, value: H5Value): NodeWithMeta {
  if (value.kind !== 'group') throw new DualstreamError('ERR_FORMAT', `${file}: NIR node ${name} is not a group`)
  const f = new Fields(file, name, value.entries)
  const type = f.string('type')
  const metadata = f.metadata()
  const node = ((): NirNode => {
    switch (type) {
      case 'Input':
      case 'Output':
        return { type, shape: f.ints('shape') }
      case 'Conv2d':
        return {
          type,
          inputShape: f.optional('input_shape', f.pair),
          weight: f.tensor('weight'),
          bias: f.tensor('bias'),
          stride: f.pair('stride'),
          padding: f.pair('padding'),
          dilation: f.pair('dilation'),
          groups: f.int('groups'),
        }
      case 'Affine':
        return { type, weight: f.tensor('weight'), bias: f.tensor('bias') }
      case 'Linear':
        return { type, weight: f.tensor('weight') }
      case 'Scale':
        return { type, scale: f.tensor('scale') }
      case 'Threshold':
        return { type, threshold: f.tensor('threshold') }
      case 'IF': {
        const v = thresholdAndReset(f)
        return { type, r: f.tensor('r'), ...v }
      }
      case 'LIF': {
        const v = thresholdAndReset(f)
        return { type, tau: f.tensor('tau'), r: f.tensor('r'), vLeak: f.tensor('v_leak'), ...v }
      }
      case 'AvgPool2d':
      case 'SumPool2d':
        return { type, kernelSize: f.pair('kernel_size'), stride: f.pair('stride'), padding: f.pair('padding') }
      case 'Flatten':
        return {
          type,
          inputType: f.optional('input_type', f.ints),
          startDim: f.int('start_dim'),
          endDim: f.int('end_dim'),
        }
      default:
        return { type: 'Unsupported', nirType: type }
    }
  })()
  return metadata ? { ...node, metadata } : node
}

/** Reads a NIR file written by `nir.write` (or by `writeNirGraph`). */
export async function readNirGraph(path: string): Promise<NirGraph> {
  const root = await readH5(path)
  const node = root.node
  if (node?.kind !== 'group')
    throw new DualstreamError('ERR_FORMAT', `${path}: not a NIR file (no "node" group at the root)`)
  const f = new Fields(path, 'node', node.entries)
  if (f.string('type') !== 'NIRGraph')
    throw new DualstreamError('ERR_FORMAT', `${path}: the root node is a ${f.string('type')}, not a NIRGraph`)
  const nodesValue = node.entries.nodes
  if (nodesValue?.kind !== 'group') throw new DualstreamError('ERR_FORMAT', `${path}: the NIR graph has no nodes group`)
  const nodes = new Map<string, NodeWithMeta>()
  for (const [name, v] of Object.entries(nodesValue.entries)) {
    if (v.kind === 'group' && v.entries.type?.kind === 'str' && v.entries.type.data[0] === 'NIRGraph')
      throw new DualstreamError('ERR_SPEC', `${path}: NIR node ${name} is a nested NIRGraph, which is not supported`)
    nodes.set(name, decodeNode(path, name, v))
  }
  const e = node.entries.edges
  const edges: [string, string][] = []
  if (e && e.kind === 'str') {
    for (let i = 0; i + 1 < e.data.length; i += 2) edges.push([e.data[i], e.data[i + 1]])
  } else if (e) {
    throw new DualstreamError('ERR_FORMAT', `${path}: the NIR graph's edges are not string pairs`)
  }
  for (const [a, b] of edges) {
    for (const end of [a, b])
      if (!nodes.has(end))
        throw new DualstreamError('ERR_FORMAT', `${path}: edge (${a}, ${b}) names a missing node ${end}`)
  }
  return { nodes, edges, metadata: f.metadata() ?? {} }
}
