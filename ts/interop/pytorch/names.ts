// Tensor name maps between dualstream and PyTorch state_dicts:
// - `dualstream-export`: our own export (model.py), the same names;
// - `spikingjelly`: SpikingJelly's model zoo (`activation_based.model.sew_resnet` /
//   `spiking_resnet`: conv1, bn1, sn1, layer<s>.<b>.conv<k>/bn<k>/sn<k>, downsample.0/1,
//   downsample_sn, fc; `spikformer` for a spec with tokens: patch_embed.*, blocks.*, head);
// - `aap`: the Dual-Stream Training authors' dsnn18..101 definitions (conv<k>.0/1 in
//   SeqToANNContainers, downsample.0.0/1, the AAP projection as pool.*, fc; their fc_acc is
//   unused and ignored; `.module.` of older SpikingJelly containers is dropped before matching).
// Each entry also says what the spec expects there, for mismatch messages.
import { DualstreamError } from '../../errors'
import type { DualStreamBlockSpec, LayerSpec, ModelSpec } from '../../spec'

export type TorchSource = 'dualstream-export' | 'spikingjelly' | 'aap'
export const TORCH_SOURCES: TorchSource[] = ['dualstream-export', 'spikingjelly', 'aap']

export interface NameEntry {
  /** Our tensor name. */
  ours: string
  /** The tensor's name in the source state_dict. */
  source: string
  /** What the spec holds there, e.g. "conv2d 64->128 3x3 stride 2 (layers.4.branch.0)". */
  expects: string
  /** A linear weight `[out, in]` stored as a `Conv1d(kernel_size=1)` weight `[out, in, 1]`. */
  conv1d?: boolean
}

/** Source keys a state_dict may hold that have no counterpart here and carry nothing we need. */
export function ignoredSourceKey(key: string, from: TorchSource): boolean {
  if (key.endsWith('num_batches_tracked')) return true
  return from === 'aap' && (key === 'fc_acc.weight' || key === 'fc_acc.bias')
}

function describe(l: LayerSpec, at: string): string {
  switch (l.type) {
    case 'conv2d':
      return `conv2d ${l.inChannels}->${l.outChannels} ${l.kernelSize[0]}x${l.kernelSize[1]} stride ${l.stride[0]}${l.groups > 1 ? ` groups ${l.groups}` : ''} (${at})`
    case 'linear':
      return `linear ${l.inFeatures}->${l.outFeatures} (${at})`
    case 'batchNorm2d':
    case 'batchNorm1d':
      return `${l.type}(${l.numFeatures}) (${at})`
    default:
      return `${l.type} (${at})`
  }
}

/** The tensor suffixes of a layer with parameters or statistics. */
function suffixes(l: LayerSpec): string[] {
  switch (l.type) {
    case 'conv2d':
    case 'linear':
      return l.bias ? ['weight', 'bias'] : ['weight']
    case 'batchNorm2d':
    case 'batchNorm1d':
      return l.affine === false ? ['running_mean', 'running_var'] : ['weight', 'bias', 'running_mean', 'running_var']
    case 'plif':
      return ['w']
    default:
      return []
  }
}

function push(out: NameEntry[], l: LayerSpec, ours: string, source: string, conv1d = false): void {
  for (const s of suffixes(l)) {
    const entry: NameEntry = { ours: `${ours}.${s}`, source: `${source}.${s}`, expects: describe(l, ours) }
    if (conv1d && s === 'weight') entry.conv1d = true
    out.push(entry)
  }
}

/** Every layer with tensors under its dualstream name (the export's names are ours). */
function walkOurs(layers: LayerSpec[], prefix: string, out: NameEntry[]): void {
  layers.forEach((l, i) => {
    const at = `${prefix}${i}`
    if (l.type === 'sewBlock' || l.type === 'spikingResnetBlock') {
      walkOurs(l.branch, `${at}.branch.`, out)
      if (l.shortcut) walkOurs(l.shortcut, `${at}.shortcut.`, out)
    } else if (l.type === 'dualStream') {
      l.stages.forEach((s, k) => {
        if (s.type !== 'block') return
        walkOurs(s.branch, `${at}.stages.${k}.branch.`, out)
        if (s.shortcut) walkOurs(s.shortcut, `${at}.stages.${k}.shortcut.`, out)
        if (s.projection) walkOurs(s.projection, `${at}.stages.${k}.projection.`, out)
      })
      const head: LayerSpec = { type: 'linear', ...l.head }
      push(out, head, `${at}.head`, `${at}.head`)
    } else push(out, l, at, at)
  })
}

function unsupported(from: TorchSource, what: string): DualstreamError {
  return new DualstreamError(
    'ERR_SPEC',
    `import --from ${from}: ${what} has no counterpart in that layout (use a zoo ResNet spec: stem conv-BN-SN-maxpool, residual blocks, GAP, FC)`,
  )
}

/** Branch layers named the ResNet way: the k-th conv is conv<k>, the BN and neuron after it bn<k>, sn<k>. */
function branchNames(branch: LayerSpec[], ours: string, source: string, aap: boolean, out: NameEntry[]): void {
  let k = 0
  branch.forEach((l, j) => {
    if (l.type === 'conv2d') k++
    const at = `${ours}.${j}`
    if (l.type === 'conv2d') push(out, l, at, aap ? `${source}.conv${k}.0` : `${source}.conv${k}`)
    else if (l.type === 'batchNorm2d') push(out, l, at, aap ? `${source}.conv${k}.1` : `${source}.bn${k}`)
    else if (l.type === 'plif') push(out, l, at, `${source}.sn${k}`)
  })
}

function shortcutNames(shortcut: LayerSpec[], ours: string, source: string, aap: boolean, out: NameEntry[]): void {
  shortcut.forEach((l, j) => {
    const at = `${ours}.${j}`
    if (l.type === 'conv2d') push(out, l, at, aap ? `${source}.downsample.0.0` : `${source}.downsample.0`)
    else if (l.type === 'batchNorm2d') push(out, l, at, aap ? `${source}.downsample.0.1` : `${source}.downsample.1`)
    else if (l.type === 'plif') push(out, l, at, `${source}.downsample_sn`)
  })
}

function projectionNames(projection: LayerSpec[], ours: string, source: string, out: NameEntry[]): void {
  const convs = projection.filter((l) => l.type === 'conv2d').length
  let c = 0
  projection.forEach((l, j) => {
    const at = `${ours}.${j}`
    if (l.type === 'conv2d') {
      push(out, l, at, convs > 1 ? `${source}.pool.0.${c}` : `${source}.pool.0`)
      c++
    } else if (l.type === 'batchNorm2d') push(out, l, at, `${source}.pool.1`)
  })
}

function outChannels(branch: LayerSpec[]): number {
  for (let j = branch.length - 1; j >= 0; j--) {
    const l = branch[j]
    if (l.type === 'conv2d') return l.outChannels
  }
  return 0
}

/** layer<s>.<b> for each block in order: a new stage starts where the output width changes. */
function stageIndices(widths: number[]): string[] {
  let s = 0
  let b = 0
  return widths.map((w, i) => {
    if (i > 0 && w !== widths[i - 1]) {
      s++
      b = 0
    } else if (i > 0) b++
    return `layer${s + 1}.${b}`
  })
}

/** The ResNet-style names of SpikingJelly's zoo and the AAP definitions. */
function walkResnet(spec: ModelSpec, from: 'spikingjelly' | 'aap', out: NameEntry[]): void {
  const aap = from === 'aap'
  const layers = spec.layers
  const blocks: { index: number; spec: LayerSpec }[] = []
  let stemConvs = 0
  let stemBns = 0
  let stemNeurons = 0
  layers.forEach((l, i) => {
    const at = `layers.${i}`
    if (l.type === 'sewBlock' || l.type === 'spikingResnetBlock') {
      if (aap) throw unsupported(from, `${l.type} ${at}`)
      blocks.push({ index: i, spec: l })
    } else if (l.type === 'dualStream') {
      if (!aap) throw unsupported(from, `the dual-stream trunk ${at}`)
      const stages = l.stages.filter((s): s is DualStreamBlockSpec => s.type === 'block')
      const names = stageIndices(stages.map((s) => outChannels(s.branch)))
      let n = 0
      l.stages.forEach((s, k) => {
        if (s.type !== 'block') return
        const name = names[n++]
        branchNames(s.branch, `${at}.stages.${k}.branch`, name, true, out)
        if (s.shortcut) shortcutNames(s.shortcut, `${at}.stages.${k}.shortcut`, name, true, out)
        if (s.projection) projectionNames(s.projection, `${at}.stages.${k}.projection`, name, out)
      })
      push(out, { type: 'linear', ...l.head }, `${at}.head`, 'fc')
    } else if (l.type === 'conv2d') {
      if (++stemConvs > 1 || blocks.length > 0) throw unsupported(from, describe(l, at))
      push(out, l, at, 'conv1')
    } else if (l.type === 'batchNorm2d') {
      if (++stemBns > 1 || blocks.length > 0) throw unsupported(from, describe(l, at))
      push(out, l, at, 'bn1')
    } else if (l.type === 'linear') {
      if (i !== layers.length - 1) throw unsupported(from, describe(l, at))
      push(out, l, at, 'fc')
    } else if (l.type === 'plif') {
      if (++stemNeurons > 1 || blocks.length > 0) throw unsupported(from, describe(l, at))
      push(out, l, at, 'sn1')
    }
  })
  const names = stageIndices(
    blocks.map((b) => outChannels((b.spec as Extract<LayerSpec, { type: 'sewBlock' }>).branch)),
  )
  blocks.forEach((b, n) => {
    const l = b.spec as Extract<LayerSpec, { type: 'sewBlock' | 'spikingResnetBlock' }>
    branchNames(l.branch, `layers.${b.index}.branch`, names[n], false, out)
    if (l.shortcut) shortcutNames(l.shortcut, `layers.${b.index}.shortcut`, names[n], false, out)
  })
}

function unsupportedSpikformer(what: string): DualstreamError {
  return new DualstreamError(
    'ERR_SPEC',
    `import --from spikingjelly: ${what} has no counterpart in SpikingJelly's Spikformer (use the zoo's spikformer spec: SPS stages, relative position block, tokens, attention and MLP blocks, tokenMean, linear)`,
  )
}

/** A Spikformer sub-block's branch: the k-th linear and the BN after it, by `names(k)`. */
function subBlockNames(branch: LayerSpec[], ours: string, names: (k: number) => string, out: NameEntry[]): void {
  let k = -1
  branch.forEach((l, j) => {
    if (l.type === 'linear') k++
    if (l.type === 'linear') push(out, l, `${ours}.${j}`, `${names(k)}.0`, true)
    else if (l.type === 'batchNorm1d') push(out, l, `${ours}.${j}`, `${names(k)}.1`)
    else if (l.type === 'conv2d' || l.type === 'batchNorm2d' || l.type === 'plif')
      throw unsupportedSpikformer(describe(l, `${ours}.${j}`))
  })
}

/** The attention (even) or MLP (odd) sub-block `i` in SpikingJelly's `blocks.<b>` names. */
function spikformerBlock(i: number): (k: number) => string {
  const b = `blocks.${Math.floor(i / 2)}`
  return i % 2 === 0 ? (k) => `${b}.attn.${k === 0 ? 'qkv' : 'proj'}_conv_bn` : (k) => `${b}.mlp.fc${k + 1}`
}

/**
 * SpikingJelly 2's `activation_based.model.spikformer`: the SPS stages
 * `patch_embed.stages.<k>.conv_bn.block.0/1`, the relative position block
 * `patch_embed.positional_encoding.conv_bn.block.0/1`, per transformer block
 * `blocks.<b>.attn.qkv_conv_bn` / `proj_conv_bn` and `blocks.<b>.mlp.fc1` / `fc2` (Conv1d k=1
 * and BatchNorm1d as `.0` / `.1`), and `head`. A dual-stream trunk's sub-blocks take the
 * blocks' names in order and its shared head `head`.
 */
function walkSpikformer(spec: ModelSpec, out: NameEntry[]): void {
  let stage = 0
  let tokensSeen = false
  let subBlock = 0
  spec.layers.forEach((l, i) => {
    const at = `layers.${i}`
    if (l.type === 'tokens') tokensSeen = true
    else if (!tokensSeen && l.type === 'conv2d') push(out, l, at, `patch_embed.stages.${stage}.conv_bn.block.0`)
    else if (!tokensSeen && l.type === 'batchNorm2d') push(out, l, at, `patch_embed.stages.${stage++}.conv_bn.block.1`)
    else if (!tokensSeen && l.type === 'sewBlock') {
      if (l.shortcut) throw unsupportedSpikformer(`the shortcut of ${at}`)
      l.branch.forEach((b, j) => {
        const src = 'patch_embed.positional_encoding.conv_bn.block'
        if (b.type === 'conv2d') push(out, b, `${at}.branch.${j}`, `${src}.0`)
        else if (b.type === 'batchNorm2d') push(out, b, `${at}.branch.${j}`, `${src}.1`)
      })
    } else if (tokensSeen && l.type === 'sewBlock') {
      if (l.shortcut) throw unsupportedSpikformer(`the shortcut of ${at}`)
      subBlockNames(l.branch, `${at}.branch`, spikformerBlock(subBlock++), out)
    } else if (tokensSeen && l.type === 'dualStream') {
      l.stages.forEach((s, k) => {
        if (s.type !== 'block') return
        if (s.shortcut || s.projection) throw unsupportedSpikformer(`the shortcut or projection of ${at}.stages.${k}`)
        subBlockNames(s.branch, `${at}.stages.${k}.branch`, spikformerBlock(subBlock++), out)
      })
      push(out, { type: 'linear', ...l.head }, `${at}.head`, 'head')
    } else if (l.type === 'linear' && i === spec.layers.length - 1) push(out, l, at, 'head')
    else if (suffixes(l).length > 0) throw unsupportedSpikformer(describe(l, at))
  })
}

/** Our tensor names with their names in `from`'s state_dict and what the spec expects. */
export function torchNameMap(spec: ModelSpec, from: TorchSource): NameEntry[] {
  const out: NameEntry[] = []
  if (from === 'dualstream-export') walkOurs(spec.layers, 'layers.', out)
  else if (from === 'spikingjelly' && spec.layers.some((l) => l.type === 'tokens')) walkSpikformer(spec, out)
  else if (from === 'spikingjelly' || from === 'aap') walkResnet(spec, from, out)
  else
    throw new DualstreamError(
      'ERR_ARG',
      `import: --from must be one of ${TORCH_SOURCES.join(', ')}, got ${JSON.stringify(from)}`,
    )
  return out
}
