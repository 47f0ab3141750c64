// dualstream import: a model from another format (a NIR graph, or a PyTorch state_dict as
// safetensors), written as a dualstream checkpoint.
import { existsSync, readFileSync } from 'node:fs'
import { DualstreamError } from '../errors'
import { TORCH_SOURCES, type TorchSource } from '../interop/pytorch/names'
import { Model } from '../model'
import type { ModelSpec } from '../spec'
import { helped, int, oneOf, optionTable, parseCommand, positive, usage } from './args'
import { MODEL_NAMES, out, WIDTH_MODELS, zooNet } from './common'

export const IMPORT_HELP = `Usage: dualstream import <file.nir> --out <checkpoint.safetensors> [--dt <s>] [--time-steps <T>]
       dualstream import <state_dict.safetensors> --model <spec.json | zoo-name> --out <checkpoint.safetensors>

Reads a model written by another tool and saves it as a dualstream checkpoint (spec and
weights inside), ready for dualstream evaluate, energy, info, export or fine-tuning.

Formats (by --format, else by the file's extension: .nir is nir, anything else torch):
  nir     a NIR graph: one dualstream exported (rebuilt exactly), or a chain of Conv2d,
          Affine/Linear, IF/LIF, AvgPool2d, Flatten (SumPool2d + Threshold as max pooling) from
          SpikingJelly, snnTorch, Norse... Unsupported nodes are refused by name.
  torch   a state_dict in safetensors trained elsewhere, read into the architecture --model
          names. A .pth file is converted first: python scripts/python/pth-to-safetensors.py
          model.pth model.safetensors. Each tensor must have the shape the spec expects; a
          missing, extra or misshapen tensor is an error naming it, both shapes and the layer.

Options:
  --out <file>          the checkpoint to write (required)
  --format <f>          nir or torch
  --dt <seconds>        nir: the writer's seconds per step (default 1e-4: SpikingJelly, snnTorch;
                        Norse 1.1.0 files need 1e-6, see docs/deployment.md)
  --time-steps <T>      nir: simulation steps of the imported model (default 4; a dualstream file
                        keeps its own); torch with a zoo network: T (default the network's)
  --model <spec|name>   torch: a model spec JSON file (an exported folder's spec.json) or a zoo name
                        (${MODEL_NAMES.filter((n) => !WIDTH_MODELS.includes(n)).join(', ')})
  --from <names>        torch: whose tensor names: ${TORCH_SOURCES.join(', ')} (default
                        dualstream-export; spikingjelly: activation_based.model sew_resnet /
                        spiking_resnet; aap: the Dual-Stream Training authors' dsnn18..101)
  --input-shape <C,H,W> torch with a zoo network: the sample shape (default the network's)
  --classes <k>         torch with a zoo network: the number of classes (default the network's)
  --json                one JSON object on stdout
  -h, --help            this help
`

const OPTIONS = optionTable(['out', 'format', 'dt', 'time-steps', 'model', 'from', 'input-shape', 'classes'])

const FORMATS = ['nir', 'torch'] as const

function specOf(model: string, values: Record<string, unknown>): ModelSpec {
  const num = (key: string): number | undefined => {
    const v = values[key]
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isInteger(n) || n < 1)
      throw usage(`import: --${key} must be a positive integer, got ${JSON.stringify(v)}`)
    return n
  }
  const shape = values['input-shape']
  const inputShape =
    typeof shape === 'string'
      ? shape.split(',').map((d) => {
          const n = Number(d)
          if (!Number.isInteger(n) || n < 1)
            throw usage(`import: --input-shape must be C,H,W positive integers, got ${shape}`)
          return n
        })
      : undefined
  const net = zooNet(model, { inputShape, classes: num('classes'), timeSteps: num('time-steps') })
  if (net) return { layers: net.layers, timeSteps: net.timeSteps, inputShape: net.inputShape, encoding: net.encoding }
  if (!existsSync(model))
    throw usage(`import: --model must be a spec JSON file or a zoo name, got ${JSON.stringify(model)}`)
  let spec: Partial<ModelSpec> & { spec?: ModelSpec }
  try {
    spec = JSON.parse(readFileSync(model, 'utf8'))
  } catch (err) {
    throw new DualstreamError('ERR_FORMAT', `${model} is not valid JSON: ${(err as Error).message}`)
  }
  // An exported folder's config.json holds the spec under "spec".
  const s = spec.spec ?? spec
  if (!Array.isArray(s.layers) || !Array.isArray(s.inputShape) || typeof s.timeSteps !== 'number')
    throw new DualstreamError('ERR_SPEC', `${model}: expected a model spec with layers, inputShape and timeSteps`)
  return { layers: s.layers, inputShape: s.inputShape, timeSteps: s.timeSteps, encoding: s.encoding ?? 'direct' }
}

export async function importModel(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('import', argv, OPTIONS, 1)
  if (helped(values, IMPORT_HELP)) return 0
  if (positionals.length === 0) throw usage('import: expected a file to import (see dualstream import --help)')
  if (typeof values.out !== 'string') throw usage('import: --out <checkpoint.safetensors> is required')
  const file = positionals[0]
  const byExtension = file.toLowerCase().endsWith('.nir') ? 'nir' : 'torch'
  const format = oneOf('import --format', values.format as string | undefined, FORMATS, byExtension)
  let model: Model
  let source: string = format
  if (format === 'nir') {
    for (const key of ['model', 'from', 'input-shape', 'classes'])
      if (values[key] !== undefined) throw usage(`import: --${key} applies to torch state_dicts only`)
    const timeSteps =
      values['time-steps'] === undefined ? undefined : int('import --time-steps', values['time-steps'] as string, 4)
    model = await Model.fromNir(file, { dt: positive('import --dt', values.dt as string | undefined, 1e-4), timeSteps })
  } else {
    if (values.dt !== undefined) throw usage('import: --dt applies to --format nir only')
    if (typeof values.model !== 'string')
      throw usage('import: --model <spec.json | zoo-name> is required for a state_dict')
    const from = (values.from ?? 'dualstream-export') as TorchSource
    if (!TORCH_SOURCES.includes(from))
      throw usage(`import: --from must be one of ${TORCH_SOURCES.join(', ')}, got ${JSON.stringify(values.from)}`)
    model = Model.fromTorch(file, specOf(values.model, values), { from })
    source = from
  }
  try {
    await model.save(values.out, { metadata: { importedFrom: file, importedFormat: source } })
    const summary = {
      from: file,
      format: source,
      out: values.out,
      layers: model.spec.layers.map((l) => l.type),
      parameters: model.parameterCount,
    }
    out(
      values.json
        ? JSON.stringify(summary)
        : `wrote ${values.out} (${source} import: ${summary.layers.length} layers, ${summary.parameters} parameters)`,
    )
  } finally {
    await model.dispose()
  }
  return 0
}
