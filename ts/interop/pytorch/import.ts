// Import: a PyTorch state_dict (safetensors) trained elsewhere -> our tensors for a model spec.
import { type NamedTensor, readSafetensors } from '../../checkpoint'
import { DualstreamError } from '../../errors'
import type { ModelSpec } from '../../spec'
import { ignoredSourceKey, type TorchSource, torchNameMap } from './names'

const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`

/** DDP and some trainers save `module.`-prefixed names. */
function stripModulePrefix(tensors: NamedTensor[]): NamedTensor[] {
  if (tensors.length === 0 || !tensors.every((t) => t.name.startsWith('module.'))) return tensors
  return tensors.map((t) => ({ ...t, name: t.name.slice('module.'.length) }))
}

/**
 * The tensors of `file` (a safetensors state_dict in `from`'s names) under our names, checked
 * against `expected` (the model's tensors and shapes). Errors name the source tensor, our
 * tensor, the expected and the found shape and the spec layer.
 */
export function torchTensorsFor(
  file: string,
  spec: ModelSpec,
  from: TorchSource,
  expected: readonly { name: string; shape: number[] }[],
): NamedTensor[] {
  // SpikingJelly's SeqToANNContainer was a wrapper holding `.module` (the AAP code's era) and is
  // a Sequential itself in SpikingJelly 2: `conv1.module.0.weight` and `conv1.0.weight` are one.
  const canonical = (name: string) => (from === 'aap' ? name.replace(/\.module\./g, '.') : name)
  const source = new Map(
    stripModulePrefix(readSafetensors(file, { skipOtherDtypes: true }).tensors).map((t) => [canonical(t.name), t]),
  )
  const map = new Map(torchNameMap(spec, from).map((e) => [e.ours, e]))
  const out: NamedTensor[] = []
  const used = new Set<string>()
  for (const want of expected) {
    const entry = map.get(want.name)
    if (!entry) {
      // Tensors with no source counterpart (a dropout's generator state) keep the model's own.
      if (want.name.endsWith('.rng_state')) continue
      throw new DualstreamError('ERR_INTERNAL', `import: no ${from} name for our tensor ${want.name}`)
    }
    const t = source.get(entry.source)
    if (!t) {
      throw new DualstreamError(
        'ERR_SHAPE',
        `${file}: tensor ${entry.source} is missing; the spec's ${entry.expects} needs it as ${want.name} with shape ${fmt(want.shape)}`,
      )
    }
    used.add(entry.source)
    const numel = want.shape.reduce((a, b) => a * b, 1)
    // SpikingJelly's PLIF w is 0-d; ours has shape [1].
    const scalarOk = want.shape.length === 1 && want.shape[0] === 1 && t.shape.length === 0
    // A Conv1d(kernel_size=1) weight [out, in, 1] holds the linear's [out, in] in the same order.
    const conv1dOk =
      entry.conv1d === true &&
      t.shape.length === 3 &&
      t.shape[2] === 1 &&
      t.shape[0] === want.shape[0] &&
      t.shape[1] === want.shape[1]
    if (
      !scalarOk &&
      !conv1dOk &&
      (t.shape.length !== want.shape.length || t.shape.some((d, i) => d !== want.shape[i]))
    ) {
      throw new DualstreamError(
        'ERR_SHAPE',
        `${file}: tensor ${entry.source}: expected shape ${fmt(want.shape)}, found ${fmt(t.shape)} (the spec's ${entry.expects}, our ${want.name})`,
      )
    }
    if (t.data.length !== numel)
      throw new DualstreamError(
        'ERR_SHAPE',
        `${file}: tensor ${entry.source} holds ${t.data.length} values, expected ${numel}`,
      )
    out.push({ name: want.name, shape: want.shape, data: t.data })
  }
  const extra = [...source.keys()].filter((k) => !used.has(k) && !ignoredSourceKey(k, from))
  if (extra.length > 0) {
    throw new DualstreamError(
      'ERR_SHAPE',
      `${file}: ${extra.length} tensor(s) have no place in the spec (--from ${from}): ${extra
        .slice(0, 5)
        .map((k) => `${k} ${fmt(source.get(k)!.shape)}`)
        .join(', ')}${extra.length > 5 ? ', ...' : ''}; is it the right model or --from?`,
    )
  }
  return out
}
