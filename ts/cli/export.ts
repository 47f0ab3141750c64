// dualstream export: the deployable full-spike model of a checkpoint.
import { writeFileAtomic } from '../checkpoint'
import type { OptionTable } from './args'
import { helped, parseCommand, usage } from './args'
import { checkpointPath, modelFromCheckpoint, out, readCheckpoint } from './common'

export const EXPORT_HELP = `Usage: dualstream export <checkpoint.safetensors | RUN_DIR> --out <file.safetensors>

Writes the deployable full-spike network of a checkpoint (a run folder: its best, else last):
a dual-stream model loses its auxiliary accumulation pathway (spec and weights), so only
spikes travel between its layers; a single-stream model is written as it is. The output holds
the weights and BN statistics, no optimizer state, with the model spec inside and beside it
(<file>.json). Load it with Model.load(file) or evaluate it with dualstream evaluate <file>.

Options:
  --out <file>          the exported checkpoint (required)
  --json                one JSON object on stdout
  -h, --help            this help
`

const OPTIONS: OptionTable = {
  out: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
}

export async function exportModel(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('export', argv, OPTIONS, 1)
  if (helped(values, EXPORT_HELP)) return 0
  if (positionals.length === 0)
    throw usage('export: expected a checkpoint file or a run folder (see dualstream export --help)')
  if (typeof values.out !== 'string') throw usage('export: --out <file.safetensors> is required')
  const path = checkpointPath('export', positionals[0])
  const model = await modelFromCheckpoint(readCheckpoint(path))
  const dual = model.spec.layers.some((l) => l.type === 'dualStream')
  const exported = dual ? await model.toFullSpike() : model
  await exported.save(values.out, { metadata: { exportedFrom: path } })
  const specPath = `${values.out.replace(/\.safetensors$/, '')}.json`
  writeFileAtomic(specPath, `${JSON.stringify(exported.spec, null, 2)}\n`)
  const summary = {
    from: path,
    out: values.out,
    spec: specPath,
    fullSpike: true,
    removedAap: dual,
    parameters: exported.parameterCount,
    parametersBefore: model.parameterCount,
  }
  if (values.json) out(JSON.stringify(summary))
  else
    out(
      `wrote ${values.out} (${summary.parameters} parameters${dual ? `, ${summary.parametersBefore - summary.parameters} AAP parameters removed` : ', already full-spike'}) and ${specPath}`,
    )
  if (exported !== model) await exported.dispose()
  await model.dispose()
  return 0
}
