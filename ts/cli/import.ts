// dualstream import: a model from another format, written as a dualstream checkpoint.
import { helped, oneOf, parseCommand, positive, usage, int } from './args'
import type { OptionTable } from './args'
import { out } from './common'
import { Model } from '../model'

export const IMPORT_HELP = `Usage: dualstream import <file> --out <checkpoint.safetensors> [--format nir]

Reads a model written by another tool and saves it as a dualstream checkpoint (spec and
weights inside), ready for dualstream evaluate, energy, info or fine-tuning with Model.load.

Formats (by --format, else by the file's extension):
  nir   a NIR graph (.nir): one dualstream exported (rebuilt exactly), or a chain of Conv2d,
        Affine/Linear, IF/LIF, AvgPool2d, Flatten (SumPool2d + Threshold as max pooling) from
        SpikingJelly, snnTorch, Norse... Unsupported nodes are refused by name.

Options:
  --out <file>          the checkpoint to write (required)
  --format <f>          nir
  --dt <seconds>        nir: the writer's seconds per step (default 1e-4: SpikingJelly, snnTorch;
                        Norse 1.1.0 files need 1e-6, see docs/deployment.md)
  --time-steps <T>      simulation steps of the imported model (default 4; a dualstream file
                        keeps its own)
  --json                one JSON object on stdout
  -h, --help            this help
`

const OPTIONS: OptionTable = {
  out: { type: 'string' },
  format: { type: 'string' },
  dt: { type: 'string' },
  'time-steps': { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

const FORMATS = ['nir'] as const

export async function importModel(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('import', argv, OPTIONS, 1)
  if (helped(values, IMPORT_HELP)) return 0
  if (positionals.length === 0) throw usage('import: expected a file to import (see dualstream import --help)')
  if (typeof values.out !== 'string') throw usage('import: --out <checkpoint.safetensors> is required')
  const file = positionals[0]
  const byExtension = file.toLowerCase().endsWith('.nir') ? 'nir' : undefined
  const format = oneOf('import --format', (values.format as string | undefined) ?? byExtension, FORMATS, 'nir')
  let model: Model
  switch (format) {
    case 'nir': {
      const timeSteps =
        values['time-steps'] === undefined ? undefined : int('import --time-steps', values['time-steps'] as string, 4)
      model = await Model.fromNir(file, {
        dt: positive('import --dt', values.dt as string | undefined, 1e-4),
        timeSteps,
      })
      break
    }
  }
  try {
    await model.save(values.out, { metadata: { importedFrom: file, importedFormat: format } })
    const summary = {
      from: file,
      format,
      out: values.out,
      layers: model.spec.layers.map((l) => l.type),
      parameters: model.parameterCount,
    }
    out(
      values.json
        ? JSON.stringify(summary)
        : `wrote ${values.out} (${format} import: ${summary.layers.length} layers, ${summary.parameters} parameters)`,
    )
  } finally {
    await model.dispose()
  }
  return 0
}
