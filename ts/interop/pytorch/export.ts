// Export: a model spec and its tensors as a self-contained PyTorch/SpikingJelly package folder.
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { type NamedTensor, writeFileAtomic, writeSafetensors } from '../../checkpoint'
import { DualstreamError } from '../../errors'
import type { TrainingConfig } from '../../model'
import type { ModelSpec } from '../../spec'
import { modelPy } from './codegen'
import { readmeMd } from './readme'
import { TRAIN_PY } from './train-py'

export const EXPORT_FORMAT = 'dualstream-pytorch-export/1'

export interface PyTorchExportOptions {
  /** Shown in model.py and the README; default "model". */
  name?: string
  /** The run's optimizer, schedule and loss, for train.py (default SGD lr 0.1 momentum 0.9). */
  training?: TrainingConfig
  /** train.py's default epochs and per-process batch size. */
  epochs?: number
  batchSize?: number
}

export interface PyTorchExport {
  dir: string
  files: string[]
  tensors: number
}

/**
 * Our tensors under the exported module's state_dict names: the same names; PLIF's `w` is a
 * 0-d tensor in SpikingJelly; a dropout's generator state has no PyTorch counterpart.
 */
export function toTorchTensors(tensors: readonly NamedTensor[]): NamedTensor[] {
  return tensors
    .filter((t) => !t.name.endsWith('.rng_state'))
    .map((t) => (t.name.endsWith('.w') && t.shape.length === 1 && t.shape[0] === 1 ? { ...t, shape: [] } : t))
}

export function writePyTorchExport(
  dir: string,
  spec: ModelSpec,
  tensors: readonly NamedTensor[],
  options: PyTorchExportOptions = {},
): PyTorchExport {
  if (typeof dir !== 'string' || dir.length === 0)
    throw new DualstreamError('ERR_ARG', 'exportPyTorch: dir must be a folder path')
  const name = options.name ?? 'model'
  try {
    mkdirSync(dir, { recursive: true })
  } catch (cause) {
    throw new DualstreamError('ERR_IO', `exportPyTorch: cannot create ${dir}: ${(cause as Error).message}`, { cause })
  }
  const config = {
    format: EXPORT_FORMAT,
    name,
    spec,
    training: options.training ?? null,
    epochs: options.epochs ?? null,
    batchSize: options.batchSize ?? null,
  }
  const torchTensors = toTorchTensors(tensors)
  writeFileAtomic(join(dir, 'model.py'), modelPy(spec, name))
  writeFileAtomic(join(dir, 'train.py'), TRAIN_PY)
  writeFileAtomic(join(dir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`)
  writeFileAtomic(join(dir, 'spec.json'), `${JSON.stringify(spec, null, 2)}\n`)
  writeFileAtomic(join(dir, 'README.md'), readmeMd(name, spec))
  writeSafetensors(join(dir, 'weights.safetensors'), torchTensors, { format: EXPORT_FORMAT })
  return {
    dir,
    files: ['model.py', 'train.py', 'weights.safetensors', 'config.json', 'spec.json', 'README.md'],
    tensors: torchTensors.length,
  }
}
