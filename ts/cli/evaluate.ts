// dualstream evaluate: a checkpoint (or a run folder's best) on a test set, as the full-spike
// network and/or the dual-stream one.
import type { Evaluation } from '../model'
import { helped, inferenceModes, int, optionTable, parseCommand, usage } from './args'
import { checkpointData, checkpointPath, modelFromCheckpoint, modelLayers, out, readCheckpoint } from './common'

export const EVALUATE_HELP = `Usage: dualstream evaluate <checkpoint.safetensors | RUN_DIR> [options]

Evaluates a checkpoint (a run folder: its best, else last, checkpoint) on a test set. The model
is rebuilt from the spec inside the checkpoint; --model loads the weights into another
architecture instead (a checkpoint of a different architecture is refused, naming the tensor).

Options:
  --dataset <name|dir>  fashion-mnist, mnist or a data folder (default: the run's, else fashion-mnist)
  --mode <mode>         fsnn (the full-spike network, AAP removed), dsnn (AAP kept), or both
                        (default: both for a dual-stream model, else fsnn)
  --model <name|file>   dsnn, snn or a model JSON file: the architecture to load the weights into
  --batch-size <n>      samples per evaluation batch (default 256)
  --limit <n>           evaluate on n test samples only
  --json                one JSON object on stdout
  -h, --help            this help
`

const OPTIONS = optionTable(['dataset', 'mode', 'model', 'batch-size', 'limit'])

export async function evaluate(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('evaluate', argv, OPTIONS, 1)
  if (helped(values, EVALUATE_HELP)) return 0
  if (positionals.length === 0)
    throw usage('evaluate: expected a checkpoint file or a run folder (see dualstream evaluate --help)')
  const target = positionals[0]
  const path = checkpointPath('evaluate', target)
  const limit = values.limit === undefined ? undefined : int('--limit', values.limit as string, 0)
  const batchSize = int('--batch-size', values['batch-size'] as string | undefined, 256)
  const checkpoint = readCheckpoint(path)
  const data = await checkpointData(values.dataset as string | undefined, target, {
    testLimit: limit,
    timeSteps: checkpoint.spec.timeSteps,
    inputShape: checkpoint.spec.inputShape,
  })
  const test = limit === undefined ? data.test : data.test.sample(Math.min(limit, data.test.length), 0)
  const model = await modelFromCheckpoint(
    checkpoint,
    values.model === undefined
      ? undefined
      : modelLayers('--model', values.model as string, {
          sampleShape: data.stepShape,
          numClasses: data.test.numClasses,
        }),
  )
  const dual = model.heads === 2
  const modes = inferenceModes(values.mode as string | undefined, dual, `${path} holds a single-stream one`)
  const results: Evaluation[] = []
  for (const m of modes) results.push(await model.evaluate(test, { batchSize, mode: m }))
  if (values.json) {
    out(JSON.stringify({ checkpoint: path, dataset: data.name, count: test.length, results }))
  } else {
    for (const r of results) {
      const what = r.mode === 'fsnn' ? (dual ? 'full-spike network (AAP removed)' : 'model') : 'DSNN (AAP kept)'
      out(
        `${what}: accuracy ${(r.accuracy * 100).toFixed(2)} %, loss ${r.loss.toFixed(4)} on ${r.count} ${data.name} test samples`,
      )
    }
  }
  await model.dispose()
  return 0
}
