// dualstream energy: the per-layer operation and energy report of a checkpoint (or of a fresh
// network from the zoo or a model file) on a test set, printed as a table or as JSON.
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { writeFileAtomic } from '../checkpoint'
import type { EnergyOptions, EnergyReport } from '../energy'
import { ENERGY_PRESETS, formatEnergyTable } from '../energy'
import type { Model } from '../model'
import { sequential } from '../model'
import { RunFolder } from '../run'
import { helped, inferenceModes, int, oneOf, optionTable, parseCommand, positive, usage } from './args'
import { checkpointData, checkpointPath, modelFromCheckpoint, modelLayers, out, readCheckpoint } from './common'

export const ENERGY_HELP = `Usage: dualstream energy <checkpoint.safetensors | RUN_DIR> [options]
       dualstream energy --model <name|file> [options]

The energy report of a network on a test set, per sample: synaptic operations of every conv and
linear layer, split into accumulations (AC: the layer's input held only spikes; AC = dense ops x
the measured input firing rate) and multiply-accumulates (MAC: a real-valued input; the static
image into the stem counts once, not T times), BN folded (free), firing rates per neuron layer
and block, and E = E_AC * AC + E_MAC * MAC: the Dynamic Consumption (measured rates) and the
worst case (every neuron fires at every step). For a run folder the report is also written to
its energy.json, which dualstream plot draws.

Options:
  --dataset <name|dir>  fashion-mnist, mnist or a data folder (default: the run's, else fashion-mnist)
  --model <name|file>   without a checkpoint: a zoo network (dsnn, snn, dsnn18, ...) or a model
                        JSON file, with freshly initialised weights; with one: the architecture
                        to load its weights into
  --time-steps <n>      T for --model without a checkpoint (default: the network's, else 4)
  --mode <mode>         fsnn (the full-spike network, AAP removed), dsnn (AAP kept), or both
                        (default: both for a dual-stream model, else fsnn)
  --preset <name>       energies per operation, 45 nm: fp32 (default; 0.9 pJ per AC, 4.6 pJ
                        per MAC, the paper's), fp16 (0.4, 1.5) or int8 (0.03, 0.23)
  --ac-pj <x>           custom picojoules per AC (with --mac-pj; overrides --preset)
  --mac-pj <x>          custom picojoules per MAC (with --ac-pj)
  --limit <n>           count on the first n test samples (default: the whole test set)
  --batch-size <n>      samples per batch (default 64)
  --json                the report(s) as one JSON object on stdout
  -h, --help            this help
`

const OPTIONS = optionTable([
  'dataset',
  'model',
  'time-steps',
  'mode',
  'preset',
  'ac-pj',
  'mac-pj',
  'limit',
  'batch-size',
])

export async function energy(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('energy', argv, OPTIONS, 1)
  if (helped(values, ENERGY_HELP)) return 0
  const target = positionals[0] as string | undefined
  const modelName = values.model as string | undefined
  if (target === undefined && modelName === undefined) {
    throw usage(
      'energy: expected a checkpoint file or a run folder, or --model <name|file> (see dualstream energy --help)',
    )
  }
  // Bad energy options fail before the test set is read.
  const preset = oneOf('--preset', values.preset as string | undefined, ENERGY_PRESETS, 'fp32')
  const acPj = values['ac-pj'] as string | undefined
  const macPj = values['mac-pj'] as string | undefined
  if ((acPj === undefined) !== (macPj === undefined))
    throw usage('energy: --ac-pj and --mac-pj go together (custom picojoules per AC and per MAC)')
  const isRun = target !== undefined && existsSync(join(target, 'config.json'))
  const checkpoint = target === undefined ? undefined : readCheckpoint(checkpointPath('energy', target))
  const timeSteps = checkpoint
    ? checkpoint.spec.timeSteps
    : values['time-steps'] === undefined
      ? undefined
      : int('--time-steps', values['time-steps'] as string, 4)
  const limit = values.limit === undefined ? undefined : int('--limit', values.limit as string, 0)
  const data = await checkpointData(values.dataset as string | undefined, target, {
    testLimit: limit,
    timeSteps,
    inputShape: checkpoint?.spec.inputShape,
  })
  const options: EnergyOptions = {
    preset,
    energies:
      acPj === undefined ? undefined : { acPj: positive('--ac-pj', acPj, 0), macPj: positive('--mac-pj', macPj, 0) },
    batchSize: int('--batch-size', values['batch-size'] as string | undefined, 64),
    maxSamples: limit,
  }
  const architecture =
    modelName === undefined
      ? undefined
      : modelLayers('--model', modelName, { sampleShape: data.stepShape, numClasses: data.test.numClasses })
  let model: Model
  let source: string
  if (checkpoint) {
    source = checkpointPath('energy', target!)
    model = await modelFromCheckpoint(checkpoint, architecture)
  } else {
    const arch = architecture!
    const steps = data.encoding === 'sequence' ? data.test.sampleShape[0] : (timeSteps ?? arch.timeSteps ?? 4)
    model = sequential(arch.layers, { timeSteps: steps, inputShape: [...data.stepShape], encoding: data.encoding })
    source = `${modelName} (fresh weights)`
  }
  try {
    const modes = inferenceModes(values.mode as string | undefined, model.heads === 2, `${source} is single-stream`)
    const reports: EnergyReport[] = []
    for (const m of modes) reports.push(await model.energy(data.test, { ...options, mode: m }))
    // The run's plot shows the network one deploys: the full-spike one when it was counted.
    if (isRun) writeFileAtomic(new RunFolder(target).energyPath, `${JSON.stringify(reports[0], null, 2)}\n`)
    if (values.json) {
      out(JSON.stringify({ source, dataset: data.name, reports }))
    } else {
      out(`${source} on ${data.name} test samples`)
      for (const r of reports) out(`\n${formatEnergyTable(r)}`)
    }
  } finally {
    await model.dispose()
  }
  return 0
}
