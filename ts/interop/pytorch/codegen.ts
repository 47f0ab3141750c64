// Model spec -> the network definition of an exported model.py: one Python expression per
// layer, built from the helpers and block classes of runtime-py.ts, so that the module's
// state_dict names equal dualstream's tensor names (`layers.3.stages.0.branch.1.weight`).
import { DualstreamError } from '../../errors'
import type { DualStage, LayerSpec, ModelSpec, NeuronParams, Pair, SurrogateSpec } from '../../spec'
import { MODEL_RUNTIME_PY } from './runtime-py'

/** A JavaScript number as a Python float literal (`2` -> `2.0`, `1e-5` -> `1e-05` style kept valid). */
export function pyFloat(x: number): string {
  if (!Number.isFinite(x)) throw new DualstreamError('ERR_SPEC', `export pytorch: ${x} is not a finite number`)
  const s = String(x)
  return /[.e]/.test(s) ? s : `${s}.0`
}

const pyBool = (b: boolean): string => (b ? 'True' : 'False')
const pyPair = (p: Pair): string => `(${p[0]}, ${p[1]})`

/** The SpikingJelly surrogate class of each surrogate with an `alpha` (SuperSpike is runtime-py.ts's own). */
const SJ_ALPHA_SURROGATES: Readonly<Record<Exclude<SurrogateSpec['type'], 'piecewiseLeakyRelu'>, string>> = {
  sigmoid: 'surrogate.Sigmoid',
  atan: 'surrogate.ATan',
  piecewiseQuadratic: 'surrogate.PiecewiseQuadratic',
  superSpike: 'SuperSpike',
  erf: 'surrogate.Erf',
  softSign: 'surrogate.SoftSign',
  piecewiseExp: 'surrogate.PiecewiseExp',
}

function pySurrogate(s: SurrogateSpec): string {
  if (s.type === 'piecewiseLeakyRelu') return `surrogate.PiecewiseLeakyReLU(w=${pyFloat(s.w)}, c=${pyFloat(s.c)})`
  const a = pyFloat(s.alpha)
  const type: unknown = s.type
  if (typeof type !== 'string' || !Object.hasOwn(SJ_ALPHA_SURROGATES, type)) {
    throw new DualstreamError(
      'ERR_SPEC',
      `export pytorch: surrogate ${JSON.stringify(type)} has no SpikingJelly counterpart`,
    )
  }
  return `${SJ_ALPHA_SURROGATES[type as keyof typeof SJ_ALPHA_SURROGATES]}(alpha=${a})`
}

function neuronArgs(n: NeuronParams): string {
  return `v_threshold=${pyFloat(n.vThreshold)}, v_reset=${n.vReset === null ? 'None' : pyFloat(n.vReset)}, detach_reset=${pyBool(n.detachReset)}, surrogate_function=${pySurrogate(n.surrogate)}`
}

function neuronPy(kind: 'if' | 'lif' | 'plif', n: NeuronParams): string {
  if (kind === 'if') return `if_node(${neuronArgs(n)})`
  return `${kind}(tau=${pyFloat(n.tau)}, decay_input=${pyBool(n.decayInput)}, ${neuronArgs(n)})`
}

function sequentialPy(layers: LayerSpec[] | null, indent: string): string {
  if (layers === null) return 'None'
  const inner = `${indent}    `
  return `nn.Sequential(\n${layers.map((l) => `${inner}${layerPy(l, inner)},`).join('\n')}\n${indent})`
}

function stagePy(s: DualStage, indent: string): string {
  if (s.type !== 'block') return layerPy(s, indent)
  const inner = `${indent}    `
  const residual = s.residualNeuron ? neuronPy('if', s.residualNeuron) : 'None'
  return [
    'DualStreamBlock(',
    `${inner}branch=${sequentialPy(s.branch, inner)},`,
    `${inner}shortcut=${sequentialPy(s.shortcut, inner)},`,
    `${inner}connect=${JSON.stringify(s.connect)},`,
    `${inner}projection=${sequentialPy(s.projection, inner)},`,
    `${inner}residual=${residual},`,
    `${indent})`,
  ].join('\n')
}

/** One layer as a Python expression; `indent` is the indentation of the line it starts on. */
export function layerPy(l: LayerSpec, indent: string): string {
  const inner = `${indent}    `
  switch (l.type) {
    case 'conv2d':
      return `conv2d(${l.inChannels}, ${l.outChannels}, ${pyPair(l.kernelSize)}, stride=${pyPair(l.stride)}, padding=${pyPair(l.padding)}, dilation=${pyPair(l.dilation ?? [1, 1])}, groups=${l.groups ?? 1}, bias=${pyBool(l.bias)})`
    case 'linear':
      return `linear(${l.inFeatures}, ${l.outFeatures}, bias=${pyBool(l.bias)})`
    case 'batchNorm2d': {
      const affine = l.affine === false ? ', affine=False' : ''
      return `batch_norm2d(${l.numFeatures}, eps=${pyFloat(l.eps)}, momentum=${pyFloat(l.momentum)}, init_weight=${pyFloat(l.initWeight ?? 1)}${affine})`
    }
    case 'maxPool2d':
    case 'avgPool2d': {
      const ceil = l.ceilMode ? ', ceil_mode=True' : ''
      const pad = l.countIncludePad === false ? ', count_include_pad=False' : ''
      const fn = l.type === 'maxPool2d' ? 'max_pool2d' : 'avg_pool2d'
      return `${fn}(${pyPair(l.kernelSize)}, stride=${pyPair(l.stride)}, padding=${pyPair(l.padding)}${ceil}${pad})`
    }
    case 'globalAvgPool':
      return 'GlobalAvgPool()'
    case 'batchNorm1d':
      if (l.affine === false) {
        throw new DualstreamError(
          'ERR_SPEC',
          'export pytorch: a batchNorm1d without affine parameters is not supported',
        )
      }
      return `batch_norm1d(${l.numFeatures}, eps=${pyFloat(l.eps)}, momentum=${pyFloat(l.momentum)}, init_weight=${pyFloat(l.initWeight ?? 1)})`
    case 'tokens':
      return 'Tokens()'
    case 'tokenMean':
      return 'TokenMean()'
    case 'spikingAttention':
      return `SpikingAttention(${l.dim}, ${l.heads}, scale=${pyFloat(l.scale)})`
    case 'flatten':
      return 'flatten()'
    case 'dropout':
      return `dropout(${pyFloat(l.p)})`
    case 'relu':
      return 'nn.ReLU()'
    case 'if':
    case 'lif':
    case 'plif':
      return neuronPy(l.type, l)
    case 'sewBlock':
      return [
        'SEWBlock(',
        `${inner}branch=${sequentialPy(l.branch, inner)},`,
        `${inner}shortcut=${sequentialPy(l.shortcut, inner)},`,
        `${inner}connect=${JSON.stringify(l.connect)},`,
        `${indent})`,
      ].join('\n')
    case 'spikingResnetBlock':
      return [
        'SpikingResNetBlock(',
        `${inner}branch=${sequentialPy(l.branch, inner)},`,
        `${inner}shortcut=${sequentialPy(l.shortcut, inner)},`,
        `${inner}residual=${neuronPy('if', l.residualNeuron)},`,
        `${indent})`,
      ].join('\n')
    case 'dualStream': {
      const inner2 = `${inner}    `
      return [
        'DualStream(',
        `${inner}stages=[`,
        ...l.stages.map((s) => `${inner2}${stagePy(s, inner2)},`),
        `${inner}],`,
        `${inner}head=linear(${l.head.inFeatures}, ${l.head.outFeatures}, bias=${pyBool(l.head.bias)}),`,
        `${inner}aap=${pyBool(l.aap)},`,
        `${inner}head_pool=${JSON.stringify(l.headPool ?? 'gap')},`,
        `${indent})`,
      ].join('\n')
    }
    default:
      throw new DualstreamError(
        'ERR_SPEC',
        `export pytorch: layer type ${JSON.stringify((l as { type: unknown }).type)} has no PyTorch counterpart`,
      )
  }
}

/** The whole model.py of a spec. */
export function modelPy(spec: ModelSpec, name: string): string {
  const indent = '        '
  const layers = spec.layers.map((l) => `${indent}${layerPy(l, indent)},`).join('\n')
  return `"""${name}: a dualstream model as a PyTorch module (SpikingJelly activation_based neurons
and layers, multi-step mode). Generated by \`dualstream export --format pytorch\` from the model
spec in config.json; state_dict names equal dualstream's tensor names, so weights go back with
\`dualstream import --from dualstream-export\`.

    from model import build, load_weights
    net = load_weights(build(), "weights.safetensors")
    net.eval()
    logits = net.logits(x, mode="fsnn")   # x: [N, ${spec.inputShape.join(', ')}]${spec.encoding === 'sequence' ? ` as [T=${spec.timeSteps}, N, ...]` : ''}

Depends only on torch, spikingjelly and safetensors.
"""
${MODEL_RUNTIME_PY}

TIME_STEPS = ${spec.timeSteps}
ENCODING = ${JSON.stringify(spec.encoding)}
INPUT_SHAPE = [${spec.inputShape.join(', ')}]


def build():
    """The network with fresh weights (PyTorch's initialisation, zero-initialised BN as the spec
    says); load_weights(net, path) puts trained ones in."""
    layers = [
${layers}
    ]
    return Net(layers, TIME_STEPS, ENCODING, INPUT_SHAPE)


if __name__ == "__main__":
    print(build())
`
}
