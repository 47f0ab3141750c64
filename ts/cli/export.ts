// dualstream export: the deployable full-spike model of a checkpoint.
import { existsSync, statSync } from 'node:fs'
import { basename, dirname, join, resolve, sep } from 'node:path'
import { writeFileAtomic } from '../checkpoint'
import type { Model } from '../model'
import { helped, oneOf, optionTable, parseCommand, positive, usage } from './args'
import { checkpointPath, modelFromCheckpoint, out, readCheckpoint } from './common'

export const EXPORT_HELP = `Usage: dualstream export <checkpoint.safetensors | RUN_DIR> --out <file> [--format safetensors|nir]
       dualstream export <checkpoint.safetensors | RUN_DIR> --format pytorch --out <DIR>

Writes the deployable full-spike network of a checkpoint (a run folder: its best, else last):
a dual-stream model loses its auxiliary accumulation pathway (spec and weights), so only
spikes travel between its layers; a single-stream model is written as it is. The output holds
the weights and BN statistics, no optimizer state, with the model spec inside and beside it
(<file>.json). Load it with Model.load(file) or evaluate it with dualstream evaluate <file>.

--format nir writes the same full-spike network as a NIR graph (HDF5) for neuromorphic
toolchains and other simulators: BNs folded, neurons with dt seconds per step (SpikingJelly's
convention), spike joins as Threshold nodes (docs/deployment.md). Layers NIR cannot express
are refused, naming the layer.

--format pytorch it writes the model (AAP kept) as a PyTorch/SpikingJelly package folder
instead: model.py, weights.safetensors, train.py (torchrun/DDP with the run's loss, optimizer
and schedule), config.json, spec.json, README.md (see docs/interop-pytorch.md).

Options:
  --out <file|dir>      the exported file, or the folder for --format pytorch (required)
  --format <f>          safetensors, nir or pytorch (default: nir for an --out ending in
                        .nir, else safetensors)
  --dt <seconds>        nir: seconds per simulation step (default 1e-4)
  --json                one JSON object on stdout
  -h, --help            this help
`

const OPTIONS = optionTable(['out', 'format', 'dt'])

/** The export must not replace the checkpoint it reads, nor any file of the run it comes from
 * (its last.safetensors is what --resume continues from). */
function checkExportTarget(given: string, source: string, target: string, folder: boolean): void {
  const out = resolve(target)
  const protectedDirs = [dirname(resolve(source))].filter(
    (d) => basename(d) === 'checkpoints' || statSync(resolve(given)).isDirectory(),
  )
  if (out === resolve(source) || protectedDirs.some((d) => out.startsWith(d + sep)))
    throw usage(
      `export --out: ${target} would overwrite ${out === resolve(source) ? 'the checkpoint being exported' : `a file of the run's ${protectedDirs[0]}`}; write the export elsewhere`,
    )
  if (!folder && existsSync(out) && statSync(out).isDirectory())
    throw usage(`export --out: ${target} is a folder; expected a file path`)
}

export async function exportModel(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('export', argv, OPTIONS, 1)
  if (helped(values, EXPORT_HELP)) return 0
  if (positionals.length === 0)
    throw usage('export: expected a checkpoint file or a run folder (see dualstream export --help)')
  if (typeof values.out !== 'string') throw usage('export: --out <file.safetensors> is required')
  const format = oneOf(
    'export --format',
    values.format as string | undefined,
    ['safetensors', 'nir', 'pytorch'] as const,
    values.out.toLowerCase().endsWith('.nir') ? 'nir' : 'safetensors',
  )
  const folder = format === 'pytorch'
  if (values.out.trim() === '' || (!folder && values.out.endsWith('/')))
    throw usage(`export --out: expected a ${folder ? 'folder' : 'file'} path, got ${JSON.stringify(values.out)}`)
  const path = checkpointPath('export', positionals[0])
  checkExportTarget(positionals[0], path, values.out, folder)
  if (format !== 'nir' && values.dt !== undefined) throw usage('export: --dt applies to --format nir only')
  const checkpoint = readCheckpoint(path)
  const model = await modelFromCheckpoint(checkpoint)
  if (format === 'nir') {
    try {
      return await exportNir(
        model,
        path,
        values.out,
        positive('export --dt', values.dt as string | undefined, 1e-4),
        values.json === true,
      )
    } finally {
      await model.dispose()
    }
  }
  if (format === 'pytorch') {
    const written = await model.exportPyTorch(values.out, {
      name: basename(path).replace(/\.safetensors$/, ''),
      training: checkpoint.training,
    })
    if (values.json) out(JSON.stringify({ from: path, out: written.dir, format, files: written.files }))
    else out(`wrote ${written.files.map((f) => join(written.dir, f)).join(', ')}`)
    await model.dispose()
    return 0
  }
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

async function exportNir(model: Model, from: string, file: string, dt: number, json: boolean): Promise<number> {
  const { nodes, edges } = await model.toNir(file, { dt })
  const summary = { from, out: file, format: 'nir', dt, nodes, edges }
  out(
    json
      ? JSON.stringify(summary)
      : `wrote ${file} (NIR graph of the full-spike network: ${nodes} nodes, ${edges} edges, dt ${dt} s)`,
  )
  return 0
}
