// dualstream import: a state_dict trained elsewhere (safetensors) -> a dualstream checkpoint.
import { existsSync, readFileSync } from 'node:fs'
import { DualstreamError } from '../errors'
import { Model } from '../model'
import type { ModelSpec } from '../spec'
import { TORCH_SOURCES, type TorchSource } from '../interop/pytorch/names'
import { helped, parseCommand, usage } from './args'
import type { OptionTable } from './args'
import { MODEL_NAMES, out, zooNet } from './common'

export const IMPORT_HELP = `Usage: dualstream import <state_dict.safetensors> --model <spec.json | zoo-name> --out <checkpoint.safetensors>

Reads weights trained elsewhere into a dualstream checkpoint of the given architecture. A .pth
file is converted first: python scripts/python/pth-to-safetensors.py model.pth model.safetensors.
Each tensor must have the shape the spec expects; a missing, extra or misshapen tensor is an
error naming it, both shapes and the spec's layer.

Options:
  --model <spec|name>   a model spec JSON file (an exported folder's spec.json) or a zoo name
                        (${MODEL_NAMES.filter((n) => n !== 'dsnn' && n !== 'snn').join(', ')})
  --from <format>       whose tensor names: ${TORCH_SOURCES.join(', ')} (default
                        dualstream-export; spikingjelly: activation_based.model sew_resnet /
                        spiking_resnet; aap: the Dual-Stream Training authors' dsnn18..101)
  --input-shape <C,H,W> zoo networks: the sample shape (default the network's)
  --classes <k>         zoo networks: the number of classes (default the network's)
  --time-steps <t>      zoo networks: simulation steps T (default the network's)
  --out <file>          the checkpoint to write (required)
  --json                one JSON object on stdout
  -h, --help            this help
`

const OPTIONS: OptionTable = {
  model: { type: 'string' },
  from: { type: 'string' },
  'input-shape': { type: 'string' },
  classes: { type: 'string' },
  'time-steps': { type: 'string' },
  out: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

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
  if (positionals.length === 0) throw usage('import: expected a safetensors state_dict (see dualstream import --help)')
  if (typeof values.model !== 'string') throw usage('import: --model <spec.json | zoo-name> is required')
  if (typeof values.out !== 'string') throw usage('import: --out <checkpoint.safetensors> is required')
  const from = (values.from ?? 'dualstream-export') as TorchSource
  if (!TORCH_SOURCES.includes(from))
    throw usage(`import: --from must be one of ${TORCH_SOURCES.join(', ')}, got ${JSON.stringify(values.from)}`)
  const file = positionals[0]
  const spec = specOf(values.model, values)
  const model = Model.fromTorch(file, spec, { from })
  await model.save(values.out, { metadata: { importedFrom: file, importedFormat: from } })
  const summary = { from: file, format: from, out: values.out, parameters: model.parameterCount }
  if (values.json) out(JSON.stringify(summary))
  else out(`wrote ${values.out} (${summary.parameters} parameters from ${file}, ${from} names)`)
  await model.dispose()
  return 0
}
