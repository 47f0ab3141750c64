// dualstream info: a model's layers, output shapes, parameters and memory.
import { existsSync, statSync } from 'node:fs'
import type { Model } from '../model'
import { sequential } from '../model'
import { helped, int, optionTable, parseCommand, usage } from './args'
import { checkpointPath, MODEL_NAMES, modelFromCheckpoint, modelLayers, out, readCheckpoint } from './common'

export const INFO_HELP = `Usage: dualstream info <model> [options]

Prints a model's layers with their output shapes (per sample and time step), its parameter
count, the memory BPTT keeps per time step, and the predicted peak memory of a training step
in each memory mode (default, recompute). <model> is dsnn or snn (the zoo networks of
dualstream train), a zoo network name (e.g. dsnn7b), a model JSON file, a checkpoint file or a
run folder.

Options:
  --input-shape <C,H,W> one sample's shape for dsnn, snn and model files (default 1,28,28)
  --classes <n>         classes for dsnn and snn (default 10)
  --time-steps <n>      simulation steps T for dsnn, snn and model files (default 4)
  --batch <n>           batch size the memory figures are given for (default 64;
                        also --batch-size)
  --no-predict          skip the training-memory prediction (it runs two short
                        training steps, at batch 1 and 2, per memory mode)
  --json                one JSON object on stdout
  -h, --help            this help
`

const OPTIONS = optionTable(['input-shape', 'classes', 'time-steps', 'batch-size', 'batch'], ['json', 'no-predict'])

function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  if (n < 1024 ** 2) return `${(n / 1024).toFixed(1)} KiB`
  if (n < 1024 ** 3) return `${(n / 1024 ** 2).toFixed(1)} MiB`
  return `${(n / 1024 ** 3).toFixed(2)} GiB`
}

export async function info(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('info', argv, OPTIONS, 1)
  if (helped(values, INFO_HELP)) return 0
  if (positionals.length === 0)
    throw usage(
      `info: expected a model: ${MODEL_NAMES.join(', ')}, a model JSON file, a checkpoint or a run folder (see dualstream info --help)`,
    )
  const target = positionals[0]
  const batchFlag = values.batch !== undefined ? '--batch' : '--batch-size'
  const batchSize = int(batchFlag, (values.batch ?? values['batch-size']) as string | undefined, 64)
  let model: Model
  const isCheckpoint = existsSync(target) && (statSync(target).isDirectory() || target.endsWith('.safetensors'))
  if (isCheckpoint) {
    model = await modelFromCheckpoint(readCheckpoint(checkpointPath('info', target)))
  } else {
    const shapeText = (values['input-shape'] as string | undefined) ?? '1,28,28'
    const inputShape = shapeText.split(',').map((d) => Number(d))
    if (!inputShape.every((d) => Number.isInteger(d) && d > 0))
      throw usage(
        `--input-shape: expected positive integers separated by commas (e.g. 2,34,34), got ${JSON.stringify(shapeText)}`,
      )
    const classes = int('--classes', values.classes as string | undefined, 10)
    const arch = modelLayers('info', target, { sampleShape: inputShape, numClasses: classes })
    const timeSteps = int('--time-steps', values['time-steps'] as string | undefined, arch.timeSteps ?? 4)
    model = sequential(arch.layers, { timeSteps, inputShape, encoding: arch.encoding })
  }
  const i = model.info()
  const perStepBatch = i.activationBytesPerStep * batchSize
  const modes = values['no-predict'] ? [] : (['default', 'recompute'] as const)
  const training = []
  for (const mode of modes) {
    // A new model per mode: buffers sized by one mode's steps would count in the other's.
    const spec = model.spec
    const fresh = sequential(spec.layers, {
      timeSteps: spec.timeSteps,
      inputShape: spec.inputShape,
      encoding: spec.encoding,
    })
    const m = fresh.predictTrainingMemory(mode)
    await fresh.dispose()
    training.push({ mode, bytes: m.bytes(batchSize), fixedBytes: m.fixed, bytesPerSample: m.perSample })
  }
  if (values.json) {
    out(JSON.stringify({ ...i, batchSize, activationBytesPerStepForBatch: perStepBatch, trainingMemory: training }))
  } else {
    const width = i.layers.reduce((w, l) => Math.max(w, l.name.length), 5)
    out(`input [${i.inputShape.join(', ')}], T = ${i.timeSteps}, encoding ${i.encoding}`)
    out(`${'layer'.padEnd(width)}  output per sample and step`)
    for (const l of i.layers) out(`${l.name.padEnd(width)}  [${l.outputShape.join(', ')}]`)
    out(`parameters: ${i.parameterCount.toLocaleString('en-US')} (${bytes(i.parameterBytes)})`)
    out(
      `memory per time step (layer outputs kept for BPTT, f32): ${bytes(i.activationBytesPerStep)} per sample, ${bytes(perStepBatch)} for a batch of ${batchSize}; x T = ${bytes(perStepBatch * i.timeSteps)} per batch`,
    )
    for (const t of training)
      out(
        `training step, memory ${t.mode}: ${bytes(t.bytes)} predicted peak for a batch of ${batchSize} (${bytes(t.fixedBytes)} + ${bytes(t.bytesPerSample)} per sample; optimizer state not included)`,
      )
  }
  await model.dispose()
  return 0
}
