// Model: a spec plus its native engine. Every heavy call is one N-API call per batch that runs
// on the libuv pool and returns a Promise, so the event loop stays free while training.
import { argError, DualstreamError, describeValue, fromNative } from './errors'

import native = require('./native')

import type { AuditResult, NativeModel, StepResult } from '../native'
import type { NamedTensor, Safetensors } from './checkpoint'
import { readSafetensors, writeSafetensors } from './checkpoint'
import { type EnergyOptions, type EnergyReport, energyArgs } from './energy'
import type { NirReadOptions, NirWriteOptions } from './interop/nir'
import { nirToSpec, readNirGraph, specToNir, writeNirGraph } from './interop/nir'
import { renameFoldedPath } from './interop/nir/paths'
import { type PyTorchExport, type PyTorchExportOptions, writePyTorchExport } from './interop/pytorch/export'
import { torchTensorsFor } from './interop/pytorch/import'
import { TORCH_SOURCES, type TorchSource } from './interop/pytorch/names'
import type { LossSpec, OptimizerSpec, ScheduleSpec } from './optim'
import { losses, schedules } from './optim'
import type { Encoding, LayerSpec, ModelSpec } from './spec'

/** What `fit` and `evaluate` read: TensorDataset (ts/data) implements it, FramesDataset, and
 * LoaderData (batches prepared ahead by a DataLoader, e.g. from an ImageFolder). */
export interface LabelledData {
  readonly length: number
  readonly sampleShape: readonly number[]
  readonly numClasses: number
  /**
   * Batches come time-major, `[T, N, ...]`, as a `sequence` model takes them (FramesDataset).
   * A `direct` model takes `[N, ...]` batches of static samples (TensorDataset).
   */
  readonly timeMajor?: boolean
  /**
   * The data in batches of `batchSize` (the last one smaller unless `dropLast`), shuffled by
   * `seed` and `epoch`. Each batch is used before the next one is asked for, so a source may
   * reuse its buffers.
   */
  batches(
    batchSize: number,
    options?: { shuffle?: boolean; seed?: number; epoch?: number; dropLast?: boolean },
  ): Iterable<DataBatch> | AsyncIterable<DataBatch>
}

export interface DataBatch {
  x: Float32Array
  y: Uint32Array
  size: number
}

export interface ModelOptions {
  /** Simulation steps T. */
  timeSteps: number
  /** One sample's shape without T and N; taken from the first data set when omitted. */
  inputShape?: number[]
  /** `direct` (default): a static sample is fed at every step; `sequence`: inputs are `[T, N, ...]`. */
  encoding?: Encoding
  /** Seed of the initial weights (and dropout masks). Default 0. */
  seed?: number
}

export interface BatchEnd {
  epoch: number
  step: number
  stepsPerEpoch: number
  loss: number
  accuracy: number
  learningRate: number
  firingRate: number
  samples: number
  seconds: number
  /** Dual-stream models: unweighted loss and accuracy per head (spike head first). */
  heads?: { loss: number; accuracy: number }[]
}

export interface EpochEnd {
  epoch: number
  loss: number
  accuracy: number
  firingRate: number
  seconds: number
  samplesPerSecond: number
  /** Learning rate of the epoch's last step. */
  learningRate: number
  /** Gradient L2 norm at each dual-stream stage's outputs in the epoch's last step (empty for
   * models without a dual-stream trunk). */
  gradientNorms: { name: string; norm: number }[]
  /** `'average'` when the fit keeps a weight average (`FitOptions.ema`): `validation` and
   * `onEpochEnd` saw the averaged weights. Absent otherwise (the trained weights). */
  weights?: 'average'
  validation?: Evaluation
}

/**
 * Where a `fit` run stands, enough to continue it exactly: the epoch (0-based) and the batches
 * already done in it, the running sums of that unfinished epoch and the finished epochs.
 * Saved in checkpoints (`save(path, { fit })`) and passed back as `fit(data, { resume })`.
 */
export interface FitState {
  epoch: number
  step: number
  partial: { samples: number; lossSum: number; correct: number; rateSum: number; seconds: number }
  history: EpochEnd[]
}

/** What `optimizer`, `schedule` and `loss` the model was last configured to train with. */
export interface TrainingConfig {
  optimizer: OptimizerSpec
  schedule: ScheduleSpec
  loss: LossSpec
  /** The weight average kept, when one was asked for. */
  ema?: EmaOptions
}

/**
 * An exponential moving average of the weights (the parameters; with `buffers` the BN running
 * statistics too), as PyTorch's `AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay))`:
 * after every optimizer step `average = decay * average + (1 - decay) * weights`, the first
 * step copying the weights.
 */
export interface EmaOptions {
  /** Weight of the old average, in [0, 1); 0.999 is usual for runs of 10,000+ steps. */
  decay: number
  /**
   * Warm-up of the decay: the update after `n` earlier ones uses `min(decay, (1 + n) / (10 + n))`
   * (TensorFlow's ExponentialMovingAverage with num_updates). Default false, as PyTorch: then the
   * initial weights and BN statistics keep a share of `decay^n`, at 0.999 still 15 % after
   * 1,900 steps, which can silence the spiking layers of the early epochs' average.
   */
  warmup?: boolean
  /**
   * Average the BN running statistics too (PyTorch's `use_buffers=True`); false (the default,
   * PyTorch's `use_buffers=False`) keeps the trained statistics beside the averaged parameters.
   * A spiking network needs false: averaged running variances exceed what the averaged
   * weights give, BN then scales the spiking layers' inputs down and fewer neurons fire.
   */
  buffers?: boolean
}

/** A checkpoint read back (`readCheckpoint`): the architecture, the weights and buffers, the
 * trainer's state and where the run stood. */
export interface Checkpoint {
  path: string
  spec: ModelSpec
  seed: number
  tensors: NamedTensor[]
  /** Schedule position and optimizer buffers (`schedule/step`, `optimizer/...`); empty when the
   * model was saved before training was configured. */
  trainer: NamedTensor[]
  training?: TrainingConfig
  fit?: FitState
  /** Free-form string metadata given to `save`. */
  metadata: Record<string, string>
}

export interface LayerInfo {
  name: string
  /** Output shape per sample and time step. */
  outputShape: number[]
}

export interface ModelInfo {
  timeSteps: number
  inputShape: number[]
  encoding: Encoding
  layers: LayerInfo[]
  parameterCount: number
  /** 4 bytes per parameter. */
  parameterBytes: number
  /** f32 activations of one sample at one time step summed over the top-level layers' outputs:
   * what BPTT keeps per sample and step (times N and T for a batch). */
  activationBytesPerStep: number
}

export interface FitOptions {
  epochs: number
  batchSize: number
  optimizer: OptimizerSpec
  /** A schedule spec, or 'cosine' to anneal over all steps of the run. Default constant. */
  schedule?: ScheduleSpec | 'cosine' | 'constant'
  loss?: LossSpec
  /** Seed of the data order. Default: the model seed. */
  seed?: number
  validation?: LabelledData
  /** Called after every batch with the run's position; a returned Promise is awaited. */
  onBatchEnd?: (info: BatchEnd, state: FitState) => unknown
  /** Called after every epoch (and its validation); a returned Promise is awaited, so a
   * callback can save a checkpoint of exactly this position. */
  onEpochEnd?: (info: EpochEnd, state: FitState) => unknown
  /** Stops after the current batch; `fit` then resolves with `stopped: true` and the state to
   * resume from. */
  signal?: AbortSignal
  /** Continue a run from a checkpoint saved with its `FitState` (`readCheckpoint`): restores the
   * optimizer and schedule position and starts at the saved epoch and batch. The other options
   * must be the ones the run started with. */
  resume?: Pick<Checkpoint, 'trainer' | 'fit' | 'path'>
  /** Keep an exponential moving average of the weights ({@link EmaOptions}). Outside its
   * training steps (in `onBatchEnd`, validation, `onEpochEnd`, and after it returns or stops)
   * the model carries the averaged weights, so what the fit reports, saves and returns is the
   * average; each training step trains the trained weights, which the trainer's state keeps
   * aside (checkpoints hold both, so a resumed run continues bit for bit). */
  ema?: EmaOptions
  /** Training memory: `'default'` keeps everything BPTT reads; `'recompute'` keeps only the
   * inputs of blocks (a dual-stream trunk's segments: a block and its poolings) and runs each
   * one's forward again in the backward pass — less memory for more time, the same gradients
   * and weights bit for bit. See docs/performance.md. */
  memory?: MemoryMode
}

/** How training keeps activations for BPTT (see `FitOptions.memory`). */
export type MemoryMode = 'default' | 'recompute'

/**
 * A training step's predicted peak memory in one memory mode: the engine's buffers (the
 * activations kept for BPTT, gradient and work buffers, parameters and their gradients) come to
 * `fixed + batch * perSample` bytes, optimizer state not included.
 */
export interface TrainingMemory {
  mode: MemoryMode
  fixed: number
  perSample: number
  /** The predicted peak for a batch of `batch` samples. */
  bytes(batch: number): number
}

export interface FitResult {
  /** Every finished epoch, those before a resume included. */
  epochs: EpochEnd[]
  stopped: boolean
  /** Seconds of this call. */
  seconds: number
  /** Where the run stands: save it with `save(path, { fit: state })` to resume later. */
  state: FitState
}

const CHECKPOINT_FORMAT = 'dualstream-checkpoint/1'

function metaJson<T>(path: string, metadata: Record<string, string>, key: string): T | undefined {
  const text = metadata[key]
  if (text === undefined) return undefined
  try {
    return JSON.parse(text) as T
  } catch (err) {
    throw new DualstreamError('ERR_FORMAT', `${path}: __metadata__.${key} is not valid JSON: ${(err as Error).message}`)
  }
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v)
const isCount = (v: unknown) => Number.isInteger(v) && (v as number) >= 0

/** `${path}: __metadata__.<key>: expected <expected>`, as ERR_FORMAT. */
function badMeta(path: string, key: string, expected: string, got: unknown): DualstreamError {
  return new DualstreamError(
    'ERR_FORMAT',
    `${path}: __metadata__.${key}: expected ${expected}, got ${describeValue(got)}`,
  )
}

function checkSpec(path: string, spec: unknown): ModelSpec {
  if (!isObject(spec)) throw badMeta(path, 'spec', 'a model spec object', spec)
  if (!Number.isInteger(spec.timeSteps) || (spec.timeSteps as number) < 1)
    throw badMeta(path, 'spec.timeSteps', 'a positive integer', spec.timeSteps)
  const shape = spec.inputShape
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d > 0))
    throw badMeta(path, 'spec.inputShape', 'an array of positive integers', shape)
  if (spec.encoding !== undefined && spec.encoding !== 'direct' && spec.encoding !== 'sequence')
    throw badMeta(path, 'spec.encoding', '"direct" or "sequence"', spec.encoding)
  if (!Array.isArray(spec.layers) || spec.layers.length === 0 || !spec.layers.every(isObject))
    throw badMeta(path, 'spec.layers', 'a non-empty array of layer specs', spec.layers)
  return spec as unknown as ModelSpec
}

function checkFit(path: string, fit: unknown): FitState | undefined {
  if (fit === undefined) return undefined
  if (!isObject(fit)) throw badMeta(path, 'fit', 'an object { epoch, step, partial, history }', fit)
  if (!isCount(fit.epoch)) throw badMeta(path, 'fit.epoch', 'an integer >= 0', fit.epoch)
  if (!isCount(fit.step)) throw badMeta(path, 'fit.step', 'an integer >= 0', fit.step)
  const p = fit.partial
  if (!isObject(p)) throw badMeta(path, 'fit.partial', 'an object of running sums', p)
  for (const key of ['samples', 'lossSum', 'correct', 'rateSum', 'seconds']) {
    if (typeof p[key] !== 'number' || !Number.isFinite(p[key]))
      throw badMeta(path, `fit.partial.${key}`, 'a finite number', p[key])
  }
  if (!Array.isArray(fit.history) || !fit.history.every(isObject))
    throw badMeta(path, 'fit.history', 'an array of finished epochs', fit.history)
  return fit as unknown as FitState
}

/** Refuses anything but `{ decay, warmup?, buffers? }` with a decay in [0, 1), naming `at`. */
function checkEma(at: string, ema: unknown): void {
  if (!isObject(ema)) throw argError(at, 'an object { decay, warmup?, buffers? }', ema)
  const extra = Object.keys(ema).find((k) => !['decay', 'warmup', 'buffers'].includes(k))
  if (extra !== undefined) throw argError(`${at}.${extra}`, 'no such option (decay, warmup, buffers)', ema[extra])
  const d = ema.decay
  if (typeof d !== 'number' || !(d >= 0 && d < 1)) throw argError(`${at}.decay`, 'a number in [0, 1)', d)
  for (const key of ['warmup', 'buffers'])
    if (ema[key] !== undefined && typeof ema[key] !== 'boolean')
      throw argError(`${at}.${key}`, 'true or false', ema[key])
}

function checkTraining(path: string, training: unknown): TrainingConfig | undefined {
  if (training === undefined) return undefined
  if (!isObject(training)) throw badMeta(path, 'training', 'an object { optimizer, schedule, loss }', training)
  for (const key of ['optimizer', 'schedule', 'loss']) {
    if (!isObject(training[key]) || typeof training[key].type !== 'string')
      throw badMeta(path, `training.${key}`, 'an object with a "type"', training[key])
  }
  return training as unknown as TrainingConfig
}

/**
 * Reads a checkpoint written by `Model.save`: weights, buffers, trainer state and metadata,
 * every metadata field checked (errors name the file and the field).
 *
 * @example
 * ```ts
 * const checkpoint = readCheckpoint('runs/first/checkpoints/last.safetensors')
 * const model = Model.fromCheckpoint(checkpoint)
 * await model.fit(train, { epochs: 4, batchSize: 64, optimizer: adam({ lr: 2e-3 }), schedule: 'cosine', resume: checkpoint })
 * ```
 */
export function readCheckpoint(path: string): Checkpoint {
  return checkpointFrom(path, readSafetensors(path))
}

/** A checkpoint from a decoded safetensors file (`path` names it in errors). */
export function checkpointFrom(path: string, { tensors, metadata }: Safetensors): Checkpoint {
  if (metadata.format !== CHECKPOINT_FORMAT || metadata.spec === undefined) {
    throw new DualstreamError(
      'ERR_FORMAT',
      `${path}: not a dualstream checkpoint (its __metadata__ has no format "${CHECKPOINT_FORMAT}" and spec)`,
    )
  }
  const spec = checkSpec(path, metaJson<unknown>(path, metadata, 'spec'))
  const seed = Number(metadata.seed ?? 0)
  const user = metaJson<unknown>(path, metadata, 'user') ?? {}
  if (!isObject(user) || !Object.values(user).every((v) => typeof v === 'string'))
    throw badMeta(path, 'user', 'an object of strings', user)
  return {
    path,
    spec,
    seed: Number.isInteger(seed) && seed >= 0 && seed <= 0xffffffff ? seed : 0,
    tensors: tensors.filter((t) => !t.name.startsWith('trainer/')),
    trainer: tensors
      .filter((t) => t.name.startsWith('trainer/'))
      .map((t) => ({ ...t, name: t.name.slice('trainer/'.length) })),
    training: checkTraining(path, metaJson<unknown>(path, metadata, 'training')),
    fit: checkFit(path, metaJson<unknown>(path, metadata, 'fit')),
    metadata: user as Record<string, string>,
  }
}

/** `fsnn`: the full-spike network (accumulation pathway removed), predicting with the spike
 * head; `dsnn`: the accumulation pathway kept, predicting with its head. Single-head models
 * evaluate as themselves in `fsnn` mode. */
export type InferenceMode = 'fsnn' | 'dsnn'

export type { AuditResult }

export interface Evaluation {
  mode: InferenceMode
  accuracy: number
  loss: number
  count: number
  /** Mean firing rate per neuron layer over the evaluated data. */
  firingRates: { name: string; rate: number }[]
}

function checkShape(name: string, shape: unknown): number[] {
  if (!Array.isArray(shape) || shape.length === 0 || !shape.every((d) => Number.isInteger(d) && d > 0)) {
    throw argError(name, 'an array of positive integers', shape)
  }
  return shape as number[]
}

/**
 * A spiking network on the native engine: train it (`fit`, `trainBatch`), evaluate it as the
 * full-spike or the dual-stream network (`evaluate`, `predict`), count its operations and energy
 * (`energy`), save and load it (`save`, `Model.load`) and derive deployable copies
 * (`toFullSpike`, `foldBatchNorm`). Calls on one model run one after another; each batch runs on
 * the libuv thread pool. Build one with {@link sequential}.
 *
 * @example
 * ```ts
 * const { train, test } = loadFashionMnist()
 * const model = sequential(convDsnn(), { timeSteps: 4, inputShape: [1, 28, 28], seed: 0 })
 * await model.fit(train, { epochs: 4, batchSize: 64, optimizer: adam({ lr: 2e-3 }), schedule: 'cosine' })
 * console.log((await model.evaluate(test, { mode: 'fsnn' })).accuracy)
 * await model.save('model.safetensors')
 * ```
 */
export class Model {
  readonly layers: readonly LayerSpec[]
  readonly timeSteps: number
  readonly encoding: Encoding
  readonly seed: number
  private inputShape: number[] | undefined
  private engine: NativeModel | undefined
  private training: TrainingConfig | undefined
  private disposed = false
  private queue: Promise<unknown> = Promise.resolve()
  /** The training or inference call running now (`fit`, `trainBatch`, `evaluate`, ...);
   * `callback` while `fit` awaits one of its callbacks, which may evaluate or save. */
  private activity: { what: string; callback: boolean } | undefined

  /** A model of `layers` applied in order; the same as {@link sequential}. */
  constructor(layers: LayerSpec[], options: ModelOptions) {
    if (!Array.isArray(layers) || layers.length === 0)
      throw argError('layers', 'a non-empty array of layer specs', layers)
    if (typeof options !== 'object' || options === null) throw argError('options', 'an object with timeSteps', options)
    if (!Number.isInteger(options.timeSteps) || options.timeSteps < 1)
      throw argError('timeSteps', 'a positive integer', options.timeSteps)
    const seed = options.seed ?? 0
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff)
      throw argError('seed', 'an integer in [0, 2^32)', seed)
    this.layers = layers
    this.timeSteps = options.timeSteps
    this.encoding = options.encoding ?? 'direct'
    this.seed = seed
    this.inputShape = options.inputShape === undefined ? undefined : checkShape('inputShape', options.inputShape)
    if (this.inputShape) this.build(this.inputShape)
  }

  /** The JSON model spec (needs the input shape: given, or seen in the first data set). */
  get spec(): ModelSpec {
    if (!this.inputShape)
      throw new DualstreamError(
        'ERR_STATE',
        'spec: the input shape is not known yet; pass inputShape or fit/evaluate on data first',
      )
    return { timeSteps: this.timeSteps, inputShape: this.inputShape, encoding: this.encoding, layers: [...this.layers] }
  }

  /** True after {@link Model.dispose}. */
  get isDisposed(): boolean {
    return this.disposed
  }

  private build(inputShape: readonly number[]): NativeModel {
    if (this.disposed) throw new DualstreamError('ERR_DISPOSED', 'the model has been disposed')
    if (this.engine) {
      const want = this.inputShape!
      if (want.length !== inputShape.length || want.some((d, i) => d !== inputShape[i])) {
        throw new DualstreamError(
          'ERR_SHAPE',
          `input: expected samples of shape [${want.join(', ')}], got [${inputShape.join(', ')}]`,
        )
      }
      return this.engine
    }
    this.inputShape = [...inputShape]
    let json: string
    try {
      json = JSON.stringify(this.spec)
    } catch (e) {
      this.inputShape = undefined
      const cyclic = e instanceof TypeError && /circular/i.test(e.message)
      throw new DualstreamError(
        'ERR_SPEC',
        cyclic
          ? 'model spec, layers: a layer spec contains itself (a cycle); expected a tree of layer specs'
          : `model spec, layers: cannot be written as JSON (${(e as Error).message}); layer specs nested thousands deep are not a model`,
      )
    }
    try {
      this.engine = new native.NativeModel(json, this.seed)
    } catch (e) {
      this.inputShape = undefined
      throw fromNative(e)
    }
    return this.engine
  }

  private native(): NativeModel {
    if (this.disposed) throw new DualstreamError('ERR_DISPOSED', 'the model has been disposed')
    if (!this.engine)
      throw new DualstreamError('ERR_STATE', 'the model is not built yet: pass inputShape or call fit/evaluate first')
    return this.engine
  }

  /**
   * Runs `fn` as the model's one activity: a second call while another runs is refused with
   * ERR_BUSY instead of interleaving its batches (and, for `fit`, its optimizer) with the
   * first. From inside `fit`'s callbacks, calls that only read the model (evaluate, predict,
   * energy) run as part of the fit.
   */
  private async claimed<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const running = this.activity
    if (running) {
      const training = what === 'fit' || what === 'trainBatch' || what === 'gradientNorms'
      if (running.callback && !training) return fn()
      throw new DualstreamError(
        'ERR_BUSY',
        `${what}: the model is busy with ${running.what}${running.callback ? ' (inside its callback)' : ''}; await it first (one training or inference call at a time)`,
      )
    }
    this.activity = { what, callback: false }
    try {
      return await fn()
    } finally {
      this.activity = undefined
    }
  }

  /** Awaits one of `fit`'s callbacks with reading calls allowed. */
  private async inCallback(fn: () => unknown): Promise<void> {
    const running = this.activity
    if (running) running.callback = true
    try {
      await fn()
    } finally {
      if (running) running.callback = false
    }
  }

  /** Checks a batch size before it crosses N-API as a u32, where 2^32 + 1 would wrap to 1 (the
   * engine then checks it against the data's length). */
  private checkBatch(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > 0xffffffff)
      throw argError('n', 'the batch size, an integer in [1, 2^32)', n)
  }

  /** Runs calls one after another, so overlapping awaits never collide in the engine. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn)
    this.queue = run.catch(() => undefined)
    return run
  }

  private batchShape(n: number): number[] {
    return this.encoding === 'direct' ? [n, ...this.inputShape!] : [this.timeSteps, n, ...this.inputShape!]
  }

  private sampleShapeOf(data: LabelledData): readonly number[] {
    if (this.encoding === 'direct') {
      if (data.timeMajor)
        throw argError(
          'data',
          'static samples for a direct-encoding model (this data set holds [T, ...] sequences: build the model with encoding "sequence")',
          data,
        )
      return data.sampleShape
    }
    // Sample-major [N, T, ...] batches would be read as [T, N, ...]: refuse rather than mix samples.
    if (!data.timeMajor)
      throw argError(
        'data',
        'a data set with time-major [T, N, ...] batches for a sequence model (e.g. FramesDataset)',
        data,
      )
    if (data.sampleShape[0] !== this.timeSteps) {
      throw argError(
        'data',
        `sequences of T = ${this.timeSteps} steps (the model's), as [T, ...] samples`,
        `samples [${data.sampleShape.join(', ')}]`,
      )
    }
    return data.sampleShape.slice(1)
  }

  /** Sets the optimizer, schedule, loss and weight average (none unless `ema` is given);
   * resets optimizer state and the average (a model carrying an average from an earlier `fit`
   * keeps it as its weights). With an average, `trainBatch` and `gradientNorms` put the trained
   * weights back into the model and leave them there; `fit` shows the average again outside its
   * steps and when it returns. */
  configureTraining(
    optimizer: OptimizerSpec,
    schedule: ScheduleSpec = schedules.constant(),
    loss: LossSpec = losses.crossEntropy(),
    ema?: EmaOptions,
  ): void {
    if (ema !== undefined) checkEma('configureTraining ema', ema)
    try {
      this.native().configureTraining(
        JSON.stringify(optimizer),
        JSON.stringify(schedule),
        JSON.stringify(loss),
        // Options left out take the engine's defaults (no warm-up, the trained BN statistics).
        ema === undefined ? undefined : JSON.stringify({ decay: ema.decay, warmup: ema.warmup, buffers: ema.buffers }),
      )
    } catch (e) {
      throw fromNative(e)
    }
    this.training = ema === undefined ? { optimizer, schedule, loss } : { optimizer, schedule, loss, ema }
  }

  /** Puts the weight average into the engine's model (training steps take it back out). */
  private showAverage(): void {
    try {
      this.native().showAverage(true)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * Writes a checkpoint (safetensors, atomically): every parameter and buffer (BN statistics,
   * dropout generator), the trainer's state when training was configured (optimizer buffers,
   * step counts, schedule position), and in `__metadata__` the model spec, the seed, the
   * training configuration, `fit` (where a run stands, for resuming) and `metadata`.
   *
   * @example
   * ```ts
   * await model.save('runs/a/last.safetensors', { metadata: { note: 'after epoch 4' } })
   * const again = await Model.load('runs/a/last.safetensors')
   * ```
   */
  save(path: string, options: { fit?: FitState; metadata?: Record<string, string> } = {}): Promise<void> {
    return this.exclusive(async () => {
      const engine = this.native()
      let tensors: NamedTensor[]
      try {
        tensors = engine.stateTensors().map((t) => ({ name: t.name, shape: t.shape, data: t.data }))
        if (this.training)
          tensors.push(
            ...engine.trainerState().map((t) => ({ name: `trainer/${t.name}`, shape: t.shape, data: t.data })),
          )
      } catch (e) {
        throw fromNative(e)
      }
      const metadata: Record<string, string> = {
        format: CHECKPOINT_FORMAT,
        spec: JSON.stringify(this.spec),
        seed: String(this.seed),
      }
      if (this.training) metadata.training = JSON.stringify(this.training)
      if (options.fit) metadata.fit = JSON.stringify(options.fit)
      if (options.metadata) metadata.user = JSON.stringify(options.metadata)
      writeSafetensors(path, tensors, metadata, { checksum: true })
    })
  }

  /** A model rebuilt from a checkpoint file alone (its spec is inside), with its weights. */
  static async load(path: string): Promise<Model> {
    return Model.fromCheckpoint(readCheckpoint(path))
  }

  /**
   * A model rebuilt from a checkpoint already read with {@link readCheckpoint}: its spec, seed,
   * weights and buffers (pass the same checkpoint to `fit`'s `resume` to continue its run).
   */
  static fromCheckpoint(checkpoint: Checkpoint): Model {
    const { spec } = checkpoint
    const m = new Model(spec.layers, {
      timeSteps: spec.timeSteps,
      inputShape: spec.inputShape,
      encoding: spec.encoding,
      seed: checkpoint.seed,
    })
    m.setWeights(checkpoint)
    return m
  }

  /**
   * A model from a PyTorch state_dict saved as safetensors (`scripts/python/pth-to-safetensors.py`
   * converts a `.pth`): `from` says whose names it uses, our PyTorch export's
   * (`dualstream-export`, the default), SpikingJelly's zoo ResNets (`spikingjelly`) or the
   * Dual-Stream Training authors' dsnn18..101 (`aap`). `spec` (a ModelSpec or a zoo network)
   * is the architecture; a tensor it lacks or has in another shape is an error naming both.
   */
  static fromTorch(file: string, spec: ModelSpec, options: { from?: TorchSource; seed?: number } = {}): Model {
    const from = options.from ?? 'dualstream-export'
    if (!TORCH_SOURCES.includes(from)) throw argError('fromTorch from', `one of ${TORCH_SOURCES.join(', ')}`, from)
    const m = new Model(spec.layers, {
      timeSteps: spec.timeSteps,
      inputShape: spec.inputShape,
      encoding: spec.encoding,
      seed: options.seed ?? 0,
    })
    try {
      const own = m.stateTensors()
      const imported = new Map(torchTensorsFor(file, m.spec, from, own).map((t) => [t.name, t]))
      m.setWeights({ path: file, tensors: own.map((t) => imported.get(t.name) ?? t) })
    } catch (e) {
      m.engine?.dispose()
      throw e
    }
    return m
  }

  /** Every parameter and buffer (BN statistics, dropout generator) by name, as a checkpoint holds them. */
  stateTensors(): NamedTensor[] {
    try {
      return this.native()
        .stateTensors()
        .map((t) => ({ name: t.name, shape: t.shape, data: t.data }))
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * Writes this model as a PyTorch/SpikingJelly package folder: model.py (the network as an
   * nn.Module), weights.safetensors (its state_dict, names as ours), train.py (torchrun/DDP
   * training with this model's loss, optimizer and schedule, or `options.training`), config.json,
   * spec.json, README.md.
   */
  exportPyTorch(dir: string, options: PyTorchExportOptions = {}): Promise<PyTorchExport> {
    return this.exclusive(async () =>
      writePyTorchExport(dir, this.spec, this.stateTensors(), {
        ...options,
        training: options.training ?? this.training,
      }),
    )
  }

  /** Loads a checkpoint's weights and buffers into this model. A checkpoint of another
   * architecture is refused, naming the first tensor that differs and both shapes. */
  async loadWeights(path: string): Promise<void> {
    const checkpoint = readCheckpoint(path)
    await this.exclusive(async () => this.setWeights(checkpoint))
  }

  private setWeights(checkpoint: Pick<Checkpoint, 'tensors' | 'path'>): void {
    const engine = this.native()
    let expected: { name: string; shape: number[] }[]
    try {
      expected = engine.stateTensors().map((t) => ({ name: t.name, shape: t.shape }))
    } catch (e) {
      throw fromNative(e)
    }
    const given = new Map(checkpoint.tensors.map((t) => [t.name, t]))
    const fmt = (shape: readonly number[]) => `[${shape.join(', ')}]`
    for (const want of expected) {
      const got = given.get(want.name)
      if (!got) {
        throw new DualstreamError(
          'ERR_SHAPE',
          `${checkpoint.path}: this model's tensor ${want.name} (shape ${fmt(want.shape)}) is missing from the checkpoint: it was saved from a different architecture`,
        )
      }
      if (got.shape.length !== want.shape.length || got.shape.some((d, i) => d !== want.shape[i])) {
        throw new DualstreamError(
          'ERR_SHAPE',
          `${checkpoint.path}: tensor ${want.name}: expected shape ${fmt(want.shape)}, got ${fmt(got.shape)} (the checkpoint is of a different architecture)`,
        )
      }
    }
    const known = new Set(expected.map((t) => t.name))
    const extra = checkpoint.tensors.find((t) => !known.has(t.name))
    if (extra) {
      throw new DualstreamError(
        'ERR_SHAPE',
        `${checkpoint.path}: the checkpoint holds tensor ${extra.name} (shape ${fmt(extra.shape)}), which this model does not have: it was saved from a different architecture`,
      )
    }
    try {
      for (const want of expected) {
        const t = given.get(want.name)!
        engine.setTensor(t.name, t.shape, t.data)
      }
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Layers with their output shapes, parameter count and memory figures. */
  info(): ModelInfo {
    const engine = this.native()
    try {
      const layers = engine.layerShapes().map((l) => ({ name: l.name, outputShape: l.shape }))
      const parameterCount = engine.parameterCount()
      const activations = layers.reduce((sum, l) => sum + l.outputShape.reduce((a, b) => a * b, 1), 0)
      return {
        timeSteps: this.timeSteps,
        inputShape: [...this.inputShape!],
        encoding: this.encoding,
        layers,
        parameterCount,
        parameterBytes: 4 * parameterCount,
        activationBytesPerStep: 4 * activations,
      }
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * One optimisation step on a batch `x` (`[N, ...sample]` for direct encoding, `[T, N, ...]`
   * for a sequence model) with labels `y`; needs {@link Model.configureTraining} first.
   *
   * @example
   * ```ts
   * model.configureTraining(adam({ lr: 2e-3 }))
   * for (const b of train.batches(64, { shuffle: true, epoch: 0 })) await model.trainBatch(b.x, b.y)
   * ```
   */
  trainBatch(x: Float32Array, y: Uint32Array): Promise<StepResult> {
    return this.claimed('trainBatch', () => this.step(x, y, true))
  }

  /**
   * Forward, loss and BPTT on a batch without updating the weights (training mode, so BN uses
   * batch statistics), then the L2 norm of the gradient at every dual-stream stage's outputs:
   * `<trunk>.stages.<i>.O` (spike stream) and `.A` (accumulation, when the AAP ran). Needs
   * `configureTraining` first (for the loss). BN running statistics update as in any training
   * forward. This is the paper's gradient check (Appendix C.3).
   */
  async gradientNorms(
    x: Float32Array,
    y: Uint32Array,
  ): Promise<{ loss: number; norms: { name: string; norm: number }[] }> {
    return this.claimed('gradientNorms', async () => {
      const r = await this.step(x, y, false)
      try {
        return { loss: r.loss, norms: this.native().gradientNorms() }
      } catch (e) {
        throw fromNative(e)
      }
    })
  }

  private step(x: Float32Array, y: Uint32Array, update: boolean): Promise<StepResult> {
    return this.exclusive(async () => {
      if (!(x instanceof Float32Array)) throw argError('x', 'a Float32Array', x)
      if (!(y instanceof Uint32Array)) throw argError('y', 'a Uint32Array of class indices', y)
      const engine = this.native()
      try {
        const shape = this.batchShape(y.length)
        return await engine.trainStep(x, shape, y, update)
      } catch (e) {
        throw fromNative(e)
      }
    })
  }

  /**
   * Time-mean output logits `[N, classes]` (row-major) for a batch of `n` samples, as the
   * full-spike (`fsnn`, default) or the dual-stream (`dsnn`) network.
   *
   * @example
   * ```ts
   * const [b] = test.batches(8)
   * const logits = await model.predict(b.x, b.size, 'fsnn') // b.size * classes numbers
   * ```
   */
  predict(x: Float32Array, n: number, mode: InferenceMode = 'fsnn'): Promise<Float32Array> {
    return this.claimed('predict', () =>
      this.exclusive(async () => {
        if (!(x instanceof Float32Array)) throw argError('x', 'a Float32Array', x)
        this.checkBatch(n)
        try {
          return (await this.native().evaluate(x, this.batchShape(n), undefined, mode)).logits
        } catch (e) {
          throw fromNative(e)
        }
      }),
    )
  }

  /**
   * Trains on `train` for `options.epochs` epochs (shuffled by the seed and the epoch), reporting
   * through `onBatchEnd` / `onEpochEnd` (a returned Promise is awaited) and stopping after the
   * current batch when `signal` aborts. `resume` continues a run saved with `save(path, { fit })`
   * so that it ends with the metrics of an uninterrupted run.
   *
   * @example
   * ```ts
   * const result = await model.fit(train, {
   *   epochs: 4, batchSize: 64, optimizer: adam({ lr: 2e-3 }), schedule: 'cosine', validation: test,
   *   onEpochEnd: async (e, state) => model.save('last.safetensors', { fit: state }),
   * })
   * ```
   */
  fit(train: LabelledData, options: FitOptions): Promise<FitResult> {
    return this.claimed('fit', () => this.fitRun(train, options))
  }

  private async fitRun(train: LabelledData, options: FitOptions): Promise<FitResult> {
    const { epochs, batchSize } = options
    if (!Number.isInteger(epochs) || epochs < 1) throw argError('fit epochs', 'a positive integer', epochs)
    if (!Number.isInteger(batchSize) || batchSize < 1) throw argError('fit batchSize', 'a positive integer', batchSize)
    if (!train || typeof train.batches !== 'function')
      throw argError('fit data', 'a labelled data set (e.g. from loadFashionMnist())', train)
    this.build(this.sampleShapeOf(train))
    const stepsPerEpoch = Math.floor(train.length / batchSize)
    if (stepsPerEpoch < 1) throw argError('fit batchSize', `at most the data set size (${train.length})`, batchSize)
    const schedule: ScheduleSpec =
      options.schedule === 'cosine'
        ? schedules.cosine({ totalSteps: epochs * stepsPerEpoch })
        : options.schedule === 'constant' || options.schedule === undefined
          ? schedules.constant()
          : options.schedule
    if (options.ema !== undefined) checkEma('fit ema', options.ema)
    const averaging = options.ema !== undefined
    this.configureTraining(options.optimizer, schedule, options.loss ?? losses.crossEntropy(), options.ema)
    this.setMemoryMode(options.memory ?? 'default')
    const resume = options.resume
    if (resume) {
      if (!resume.fit)
        throw new DualstreamError(
          'ERR_ARG',
          `fit resume: ${resume.path} holds no fit state (it was not saved during a fit run)`,
        )
      try {
        this.native().setTrainerState(resume.trainer.map((t) => ({ name: t.name, shape: t.shape, data: t.data })))
      } catch (e) {
        const err = fromNative(e)
        throw new DualstreamError(err.code, `fit resume: ${resume.path}: ${err.message}`)
      }
      if (resume.fit.step >= stepsPerEpoch || resume.fit.epoch > epochs) {
        throw new DualstreamError(
          'ERR_ARG',
          `fit resume: ${resume.path} stopped at epoch ${resume.fit.epoch} step ${resume.fit.step}, outside this run of ${epochs} epochs of ${stepsPerEpoch} steps (were epochs, batch size or data changed?)`,
        )
      }
    }
    const seed = options.seed ?? this.seed
    const started = performance.now()
    const history: EpochEnd[] = resume ? [...resume.fit!.history] : []
    const first = resume ? resume.fit!.epoch : 0
    for (let epoch = first; epoch < epochs; epoch++) {
      const carried = epoch === first && resume ? resume.fit! : undefined
      const skip = carried?.step ?? 0
      let {
        samples,
        lossSum,
        correct,
        rateSum,
        seconds: carriedSeconds,
      } = carried?.partial ?? { samples: 0, lossSum: 0, correct: 0, rateSum: 0, seconds: 0 }
      let step = skip
      let learningRate = 0
      const epochStart = performance.now()
      const state = (): FitState => ({
        epoch,
        step,
        partial: {
          samples,
          lossSum,
          correct,
          rateSum,
          seconds: carriedSeconds + (performance.now() - epochStart) / 1000,
        },
        history,
      })
      let index = 0
      for await (const batch of train.batches(batchSize, { shuffle: true, seed, epoch, dropLast: true })) {
        // The data order depends on (seed, epoch) only, so the batches done before are skipped.
        if (index++ < skip) continue
        if (options.signal?.aborted) {
          if (averaging) this.showAverage()
          return { epochs: history, stopped: true, seconds: (performance.now() - started) / 1000, state: state() }
        }
        const r = await this.step(batch.x, batch.y, true)
        step++
        samples += r.count
        lossSum += r.loss * r.count
        correct += r.correct
        rateSum += r.firingRate
        learningRate = r.learningRate
        const info: BatchEnd = {
          epoch,
          step,
          stepsPerEpoch,
          loss: r.loss,
          accuracy: r.correct / r.count,
          learningRate: r.learningRate,
          firingRate: r.firingRate,
          samples,
          seconds: carriedSeconds + (performance.now() - epochStart) / 1000,
        }
        if (r.headLosses.length > 0)
          info.heads = r.headLosses.map((loss, h) => ({ loss, accuracy: r.headCorrect[h] / r.count }))
        if (options.onBatchEnd) {
          const onBatchEnd = options.onBatchEnd
          if (averaging) this.showAverage()
          await this.inCallback(() => onBatchEnd(info, state()))
        }
      }
      let gradientNorms: { name: string; norm: number }[]
      try {
        gradientNorms = this.native().gradientNorms()
      } catch (e) {
        throw fromNative(e)
      }
      const seconds = carriedSeconds + (performance.now() - epochStart) / 1000
      const end: EpochEnd = {
        epoch,
        loss: lossSum / samples,
        accuracy: correct / samples,
        firingRate: rateSum / step,
        seconds,
        samplesPerSecond: samples / seconds,
        learningRate,
        gradientNorms,
      }
      if (averaging) {
        this.showAverage()
        end.weights = 'average'
      }
      if (options.validation) end.validation = await this.evaluateRun(options.validation, { batchSize })
      history.push(end)
      const next: FitState = {
        epoch: epoch + 1,
        step: 0,
        partial: { samples: 0, lossSum: 0, correct: 0, rateSum: 0, seconds: 0 },
        history,
      }
      if (options.onEpochEnd) {
        const onEpochEnd = options.onEpochEnd
        await this.inCallback(() => onEpochEnd(end, next))
      }
    }
    if (averaging) this.showAverage()
    return {
      epochs: history,
      stopped: false,
      seconds: (performance.now() - started) / 1000,
      state: {
        epoch: epochs,
        step: 0,
        partial: { samples: 0, lossSum: 0, correct: 0, rateSum: 0, seconds: 0 },
        history,
      },
    }
  }

  /** Accuracy, loss and firing rates over a data set (eval mode: BN running statistics), as
   * the full-spike (`fsnn`, default) or the dual-stream (`dsnn`) network.
   *
   * @example
   * ```ts
   * const fsnn = await model.evaluate(test)                    // AAP removed
   * const dsnn = await model.evaluate(test, { mode: 'dsnn' })  // AAP kept
   * ```
   */
  evaluate(data: LabelledData, options: { batchSize?: number; mode?: InferenceMode } = {}): Promise<Evaluation> {
    return this.claimed('evaluate', () => this.evaluateRun(data, options))
  }

  private async evaluateRun(
    data: LabelledData,
    options: { batchSize?: number; mode?: InferenceMode } = {},
  ): Promise<Evaluation> {
    const batchSize = options.batchSize ?? 256
    const mode = options.mode ?? 'fsnn'
    if (mode !== 'fsnn' && mode !== 'dsnn') throw argError('evaluate mode', '"fsnn" or "dsnn"', mode)
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw argError('evaluate batchSize', 'a positive integer', batchSize)
    if (!data || typeof data.batches !== 'function') throw argError('evaluate data', 'a labelled data set', data)
    this.build(this.sampleShapeOf(data))
    let count = 0,
      correct = 0,
      lossSum = 0
    const rateSums = new Map<string, number>()
    for await (const batch of data.batches(batchSize, { shuffle: false })) {
      const r = await this.exclusive(async () => {
        try {
          return await this.native().evaluate(batch.x, this.batchShape(batch.size), batch.y, mode)
        } catch (e) {
          throw fromNative(e)
        }
      })
      count += r.count
      correct += r.correct
      lossSum += r.loss * r.count
      for (const { name, rate } of r.firingRates) rateSums.set(name, (rateSums.get(name) ?? 0) + rate * r.count)
    }
    return {
      mode,
      accuracy: count ? correct / count : 0,
      loss: count ? lossSum / count : 0,
      count,
      firingRates: [...rateSums].map(([name, sum]) => ({ name, rate: sum / count })),
    }
  }

  /**
   * Synaptic operations, firing rates and energy per sample over a data set (eval mode, as
   * `fsnn` or `dsnn`), with the accuracy in that mode: spike inputs cost accumulations
   * (AC = ops x input rate), other inputs multiply-accumulates (MAC); BN is folded (free); a
   * static image counts once. `formatEnergyTable(report)` prints it.
   *
   * @example
   * ```ts
   * const report = await model.energy(test, { mode: 'fsnn', preset: 'fp32', maxSamples: 1000 })
   * console.log(formatEnergyTable(report))
   * ```
   */
  energy(data: LabelledData, options: EnergyOptions = {}): Promise<EnergyReport> {
    return this.claimed('energy', () => this.energyRun(data, options))
  }

  private async energyRun(data: LabelledData, options: EnergyOptions): Promise<EnergyReport> {
    const batchSize = options.batchSize ?? 64
    const mode = options.mode ?? 'fsnn'
    const maxSamples = options.maxSamples ?? Infinity
    if (mode !== 'fsnn' && mode !== 'dsnn') throw argError('energy mode', '"fsnn" or "dsnn"', mode)
    if (!Number.isInteger(batchSize) || batchSize < 1)
      throw argError('energy batchSize', 'a positive integer', batchSize)
    if (maxSamples !== Infinity && (!Number.isInteger(maxSamples) || maxSamples < 1))
      throw argError('energy maxSamples', 'a positive integer', maxSamples)
    if (!data || typeof data.batches !== 'function') throw argError('energy data', 'a labelled data set', data)
    const { preset, acPj, macPj } = energyArgs(options)
    this.build(this.sampleShapeOf(data))
    return this.exclusive(async () => {
      const engine = this.native()
      try {
        engine.resetEnergy()
        let count = 0,
          correct = 0
        for await (const batch of data.batches(batchSize, { shuffle: false })) {
          if (count >= maxSamples) break
          const n = Math.min(batch.size, maxSamples - count)
          const x = n < batch.size ? batch.x.subarray(0, (batch.x.length / batch.size) * n) : batch.x
          const r = await engine.evaluate(x, this.batchShape(n), batch.y.subarray(0, n), mode, true)
          count += r.count
          correct += r.correct
        }
        const counted = JSON.parse(engine.energyReport(preset, acPj, macPj))
        return { mode, accuracy: count ? correct / count : 0, ...counted } as EnergyReport
      } catch (e) {
        throw fromNative(e)
      }
    })
  }

  /**
   * A copy for inference with every conv directly followed by a BN folded into one conv with a
   * bias (Appendix A): the same eval-mode outputs, fewer layers.
   */
  foldBatchNorm(): Promise<Model> {
    return this.derive((engine) => engine.foldBatchNorm())
  }

  /** Heads side by side in the training output: 2 for a dual-stream model, else 1. */
  get heads(): number {
    try {
      return this.native().heads()
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * The deployable full-spike network: the same spec without the auxiliary accumulation
   * pathway and the same weights minus the AAP projections. Its output equals this model's
   * `fsnn`-mode output exactly.
   *
   * @example
   * ```ts
   * const deployable = await model.toFullSpike()
   * await deployable.save('fsnn.safetensors')
   * ```
   */
  toFullSpike(): Promise<Model> {
    return this.derive((engine) => engine.toFullSpike())
  }

  /**
   * Writes the deployable network as a NIR graph (HDF5, `nir.read` loads it): the full-spike
   * network (the AAP removed), BNs folded into their convs, neurons with the dt convention of
   * docs/deployment.md, spike joins as Scale/Threshold nodes. Layers NIR cannot express (max
   * pooling of non-spikes, soft reset, ReLU) are refused with ERR_SPEC naming them.
   */
  async toNir(path: string, options: NirWriteOptions = {}): Promise<{ nodes: number; edges: number }> {
    const dual = this.layers.some((l) => l.type === 'dualStream' && l.aap)
    const fsnn = dual ? await this.toFullSpike() : this
    const folded = await fsnn.foldBatchNorm()
    try {
      const tensors = folded
        .native()
        .stateTensors()
        .map((t) => ({ name: t.name, shape: t.shape, data: t.data }))
      const graph = specToNir(folded.spec, tensors, options)
      await writeNirGraph(path, graph)
      return { nodes: graph.nodes.size, edges: graph.edges.length }
    } catch (e) {
      throw fromNative(renameFoldedPath(e, fsnn.spec.layers, folded.spec.layers))
    } finally {
      await folded.dispose()
      if (fsnn !== this) await fsnn.dispose()
    }
  }

  /**
   * A model from a NIR file: one dualstream wrote (rebuilt exactly from the spec it keeps), or
   * a chain of Conv2d/Affine/IF/LIF/AvgPool2d/Flatten nodes from SpikingJelly, snnTorch or
   * Norse (pass the writer's `dt`: 1e-4 for the first two; 1e-6 for Norse 1.1.0's default, see docs/deployment.md).
   */
  static async fromNir(path: string, options: NirReadOptions = {}): Promise<Model> {
    const { spec, tensors } = nirToSpec(path, await readNirGraph(path), options)
    const m = new Model(spec.layers, {
      timeSteps: spec.timeSteps,
      inputShape: spec.inputShape,
      encoding: spec.encoding,
    })
    m.setWeights({ tensors, path })
    return m
  }

  /** A Model around an engine derived from this one (its spec read back from the engine). */
  /** A new model around the engine `make` derives from this one's (a native error becomes a `DualstreamError`). */
  private derive(make: (engine: NativeModel) => NativeModel): Promise<Model> {
    return this.exclusive(async () => {
      let engine: NativeModel
      try {
        engine = make(this.native())
      } catch (e) {
        throw fromNative(e)
      }
      return this.wrap(engine)
    })
  }

  private wrap(engine: NativeModel): Model {
    const spec = JSON.parse(engine.specJson()) as ModelSpec
    const m = new Model(spec.layers, { timeSteps: spec.timeSteps, encoding: spec.encoding, seed: this.seed })
    m.inputShape = spec.inputShape
    m.engine = engine
    return m
  }

  /**
   * Full-spike audit of a batch `x` of `n` samples: runs it as the full-spike network and
   * checks that every synaptic layer (conv, linear) except the stem received only 0s and 1s.
   * `offending` names each other layer that did not, with an example value.
   */
  audit(x: Float32Array, n: number): Promise<AuditResult> {
    return this.exclusive(async () => {
      if (!(x instanceof Float32Array)) throw argError('x', 'a Float32Array', x)
      this.checkBatch(n)
      try {
        return await this.native().audit(x, this.batchShape(n))
      } catch (e) {
        throw fromNative(e)
      }
    })
  }

  /** Training memory mode for the following training steps (see `FitOptions.memory`). */
  setMemoryMode(mode: MemoryMode): void {
    if (mode !== 'default' && mode !== 'recompute') throw argError('memory', "'default' or 'recompute'", mode)
    try {
      this.native().setMemoryMode(mode)
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Bytes the last training forward kept for the backward pass (spike maps bit-packed), as
   * the engine counts them layer by layer. */
  storedBytes(): number {
    try {
      return this.native().storedBytes()
    } catch (e) {
      throw fromNative(e)
    }
  }

  /**
   * Predicts a training step's peak memory in memory mode `mode` for any batch size, from the
   * engine's own byte counters over two training steps at batch 1 and 2 (every buffer a step
   * holds either scales with the batch or does not depend on it). The weights do not change and
   * the BN running statistics are restored; the memory mode set for training stays as it is.
   * Call it on a model that has not yet trained on a larger batch or in the other mode (its
   * buffers keep the size of its largest step), as `dualstream info` does with a new model per
   * mode.
   */
  predictTrainingMemory(mode: MemoryMode = 'default'): TrainingMemory {
    if (mode !== 'default' && mode !== 'recompute') throw argError('memory', "'default' or 'recompute'", mode)
    try {
      const { fixed, perSample } = this.native().predictTrainingMemory(mode)
      return { mode, fixed, perSample, bytes: (batch: number) => fixed + batch * perSample }
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Mean firing rate of each neuron layer during the last forward. */
  firingRates(): { name: string; rate: number }[] {
    try {
      return this.native().firingRates()
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Learnable parameters (weights, biases, BN affine, PLIF time constants). */
  get parameterCount(): number {
    try {
      return this.native().parameterCount()
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** Frees the native weights. Later calls throw ERR_DISPOSED. */
  async dispose(): Promise<void> {
    await this.exclusive(async () => {
      this.engine?.dispose()
      this.engine = undefined
      this.disposed = true
    })
  }
}

/**
 * A model made of layers applied in order.
 *
 * @example
 * ```ts
 * const model = sequential([
 *   conv2d(1, 32, 3, { padding: 1, bias: false }), batchNorm2d(32), lif(), maxPool2d(2),
 *   flatten(), linear(32 * 14 * 14, 10),
 * ], { timeSteps: 4, inputShape: [1, 28, 28], seed: 0 })
 * ```
 */
export function sequential(layers: LayerSpec[], options: ModelOptions): Model {
  return new Model(layers, options)
}
