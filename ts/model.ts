// Model: a spec plus its native engine. Every heavy call is one N-API call per batch that runs
// on the libuv pool and returns a Promise, so the event loop stays free while training.
import { DualstreamError, argError, fromNative } from './errors'
import native = require('./native')
import type { AuditResult, NativeModel, StepResult } from '../native'
import type { LossSpec, OptimizerSpec, ScheduleSpec } from './optim'
import { losses, schedules } from './optim'
import type { Encoding, LayerSpec, ModelSpec } from './spec'
import { energyArgs, type EnergyOptions, type EnergyReport } from './energy'

/** What `fit` and `evaluate` read: TensorDataset (ts/data) implements it. */
export interface LabelledData {
  readonly length: number
  readonly sampleShape: readonly number[]
  readonly numClasses: number
  batches(batchSize: number, options?: { shuffle?: boolean; seed?: number; epoch?: number; dropLast?: boolean }): Iterable<{ x: Float32Array; y: Uint32Array; size: number }>
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
  validation?: Evaluation
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
  onBatchEnd?: (info: BatchEnd) => void
  onEpochEnd?: (info: EpochEnd) => void
  /** Stops after the current batch; `fit` then resolves with `stopped: true`. */
  signal?: AbortSignal
}

export interface FitResult {
  epochs: EpochEnd[]
  stopped: boolean
  seconds: number
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

export class Model {
  readonly layers: readonly LayerSpec[]
  readonly timeSteps: number
  readonly encoding: Encoding
  readonly seed: number
  private inputShape: number[] | undefined
  private engine: NativeModel | undefined
  private disposed = false
  private queue: Promise<unknown> = Promise.resolve()

  constructor(layers: LayerSpec[], options: ModelOptions) {
    if (!Array.isArray(layers) || layers.length === 0) throw argError('layers', 'a non-empty array of layer specs', layers)
    if (typeof options !== 'object' || options === null) throw argError('options', 'an object with timeSteps', options)
    if (!Number.isInteger(options.timeSteps) || options.timeSteps < 1) throw argError('timeSteps', 'a positive integer', options.timeSteps)
    const seed = options.seed ?? 0
    if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw argError('seed', 'an integer in [0, 2^32)', seed)
    this.layers = layers
    this.timeSteps = options.timeSteps
    this.encoding = options.encoding ?? 'direct'
    this.seed = seed
    this.inputShape = options.inputShape === undefined ? undefined : checkShape('inputShape', options.inputShape)
    if (this.inputShape) this.build(this.inputShape)
  }

  /** The JSON model spec (needs the input shape: given, or seen in the first data set). */
  get spec(): ModelSpec {
    if (!this.inputShape) throw new DualstreamError('ERR_STATE', 'spec: the input shape is not known yet; pass inputShape or fit/evaluate on data first')
    return { timeSteps: this.timeSteps, inputShape: this.inputShape, encoding: this.encoding, layers: [...this.layers] }
  }

  get isDisposed(): boolean {
    return this.disposed
  }

  private build(inputShape: readonly number[]): NativeModel {
    if (this.disposed) throw new DualstreamError('ERR_DISPOSED', 'the model has been disposed')
    if (this.engine) {
      const want = this.inputShape!
      if (want.length !== inputShape.length || want.some((d, i) => d !== inputShape[i])) {
        throw new DualstreamError('ERR_SHAPE', `input: expected samples of shape [${want.join(', ')}], got [${inputShape.join(', ')}]`)
      }
      return this.engine
    }
    this.inputShape = [...inputShape]
    try {
      this.engine = new native.NativeModel(JSON.stringify(this.spec), this.seed)
    } catch (e) {
      this.inputShape = undefined
      throw fromNative(e)
    }
    return this.engine
  }

  private native(): NativeModel {
    if (this.disposed) throw new DualstreamError('ERR_DISPOSED', 'the model has been disposed')
    if (!this.engine) throw new DualstreamError('ERR_STATE', 'the model is not built yet: pass inputShape or call fit/evaluate first')
    return this.engine
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
    if (this.encoding === 'direct') return data.sampleShape
    // Sequence data carries T in front of each sample: [T, ...].
    return data.sampleShape.slice(1)
  }

  /** Sets the optimizer, schedule and loss; resets optimizer state. */
  configureTraining(optimizer: OptimizerSpec, schedule: ScheduleSpec = schedules.constant(), loss: LossSpec = losses.crossEntropy()): void {
    try {
      this.native().configureTraining(JSON.stringify(optimizer), JSON.stringify(schedule), JSON.stringify(loss))
    } catch (e) {
      throw fromNative(e)
    }
  }

  /** One optimisation step on a batch `x` ([N, ...sample] for direct encoding) with labels `y`. */
  trainBatch(x: Float32Array, y: Uint32Array): Promise<StepResult> {
    return this.step(x, y, true)
  }

  /**
   * Forward, loss and BPTT on a batch without updating the weights (training mode, so BN uses
   * batch statistics), then the L2 norm of the gradient at every dual-stream stage's outputs:
   * `<trunk>.stages.<i>.O` (spike stream) and `.A` (accumulation, when the AAP ran). Needs
   * `configureTraining` first (for the loss). BN running statistics update as in any training
   * forward. This is the paper's gradient check (Appendix C.3).
   */
  async gradientNorms(x: Float32Array, y: Uint32Array): Promise<{ loss: number; norms: { name: string; norm: number }[] }> {
    const r = await this.step(x, y, false)
    try {
      return { loss: r.loss, norms: this.native().gradientNorms() }
    } catch (e) {
      throw fromNative(e)
    }
  }

  private step(x: Float32Array, y: Uint32Array, update: boolean): Promise<StepResult> {
    return this.exclusive(async () => {
      if (!(x instanceof Float32Array)) throw argError('x', 'a Float32Array', x)
      if (!(y instanceof Uint32Array)) throw argError('y', 'a Uint32Array of class indices', y)
      const engine = this.native()
      try {
        const shape = this.batchShape(y.length)
        return await (update ? engine.trainStep(x, shape, y) : engine.computeGradients(x, shape, y))
      } catch (e) {
        throw fromNative(e)
      }
    })
  }

  /** Time-mean output logits `[N, classes]` for a batch. */
  predict(x: Float32Array, n: number, mode: InferenceMode = 'fsnn'): Promise<Float32Array> {
    return this.exclusive(async () => {
      if (!(x instanceof Float32Array)) throw argError('x', 'a Float32Array', x)
      if (!Number.isInteger(n) || n < 1) throw argError('n', 'the batch size, a positive integer', n)
      try {
        return (await this.native().evaluate(x, this.batchShape(n), undefined, mode)).logits
      } catch (e) {
        throw fromNative(e)
      }
    })
  }

  async fit(train: LabelledData, options: FitOptions): Promise<FitResult> {
    const { epochs, batchSize } = options
    if (!Number.isInteger(epochs) || epochs < 1) throw argError('fit epochs', 'a positive integer', epochs)
    if (!Number.isInteger(batchSize) || batchSize < 1) throw argError('fit batchSize', 'a positive integer', batchSize)
    if (!train || typeof train.batches !== 'function') throw argError('fit data', 'a labelled data set (e.g. from loadFashionMnist())', train)
    this.build(this.sampleShapeOf(train))
    const stepsPerEpoch = Math.floor(train.length / batchSize)
    if (stepsPerEpoch < 1) throw argError('fit batchSize', `at most the data set size (${train.length})`, batchSize)
    const schedule: ScheduleSpec =
      options.schedule === 'cosine'
        ? schedules.cosine({ totalSteps: epochs * stepsPerEpoch })
        : options.schedule === 'constant' || options.schedule === undefined
          ? schedules.constant()
          : options.schedule
    this.configureTraining(options.optimizer, schedule, options.loss ?? losses.crossEntropy())
    const seed = options.seed ?? this.seed
    const started = performance.now()
    const history: EpochEnd[] = []
    for (let epoch = 0; epoch < epochs; epoch++) {
      const epochStart = performance.now()
      let step = 0, samples = 0, lossSum = 0, correct = 0, rateSum = 0
      for (const batch of train.batches(batchSize, { shuffle: true, seed, epoch, dropLast: true })) {
        if (options.signal?.aborted) return { epochs: history, stopped: true, seconds: (performance.now() - started) / 1000 }
        const r = await this.trainBatch(batch.x, batch.y)
        step++
        samples += r.count
        lossSum += r.loss * r.count
        correct += r.correct
        rateSum += r.firingRate
        const info: BatchEnd = {
          epoch, step, stepsPerEpoch, loss: r.loss, accuracy: r.correct / r.count, learningRate: r.learningRate,
          firingRate: r.firingRate, samples, seconds: (performance.now() - epochStart) / 1000,
        }
        if (r.headLosses.length > 0) info.heads = r.headLosses.map((loss, h) => ({ loss, accuracy: r.headCorrect[h] / r.count }))
        options.onBatchEnd?.(info)
      }
      const seconds = (performance.now() - epochStart) / 1000
      const end: EpochEnd = {
        epoch, loss: lossSum / samples, accuracy: correct / samples, firingRate: rateSum / step, seconds, samplesPerSecond: samples / seconds,
      }
      if (options.validation) end.validation = await this.evaluate(options.validation, { batchSize })
      history.push(end)
      options.onEpochEnd?.(end)
    }
    return { epochs: history, stopped: false, seconds: (performance.now() - started) / 1000 }
  }

  /** Accuracy, loss and firing rates over a data set (eval mode: BN running statistics), as
   * the full-spike (`fsnn`, default) or the dual-stream (`dsnn`) network. */
  async evaluate(data: LabelledData, options: { batchSize?: number; mode?: InferenceMode } = {}): Promise<Evaluation> {
    const batchSize = options.batchSize ?? 256
    const mode = options.mode ?? 'fsnn'
    if (mode !== 'fsnn' && mode !== 'dsnn') throw argError('evaluate mode', '"fsnn" or "dsnn"', mode)
    if (!Number.isInteger(batchSize) || batchSize < 1) throw argError('evaluate batchSize', 'a positive integer', batchSize)
    if (!data || typeof data.batches !== 'function') throw argError('evaluate data', 'a labelled data set', data)
    this.build(this.sampleShapeOf(data))
    let count = 0, correct = 0, lossSum = 0
    const rateSums = new Map<string, number>()
    for (const batch of data.batches(batchSize, { shuffle: false })) {
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
   */
  async energy(data: LabelledData, options: EnergyOptions = {}): Promise<EnergyReport> {
    const batchSize = options.batchSize ?? 64
    const mode = options.mode ?? 'fsnn'
    const maxSamples = options.maxSamples ?? Infinity
    if (mode !== 'fsnn' && mode !== 'dsnn') throw argError('energy mode', '"fsnn" or "dsnn"', mode)
    if (!Number.isInteger(batchSize) || batchSize < 1) throw argError('energy batchSize', 'a positive integer', batchSize)
    if (maxSamples !== Infinity && (!Number.isInteger(maxSamples) || maxSamples < 1)) throw argError('energy maxSamples', 'a positive integer', maxSamples)
    if (!data || typeof data.batches !== 'function') throw argError('energy data', 'a labelled data set', data)
    const { preset, acPj, macPj } = energyArgs(options)
    this.build(this.sampleShapeOf(data))
    return this.exclusive(async () => {
      const engine = this.native()
      try {
        engine.resetEnergy()
        let count = 0, correct = 0
        for (const batch of data.batches(batchSize, { shuffle: false })) {
          if (count >= maxSamples) break
          const n = Math.min(batch.size, maxSamples - count)
          const x = n < batch.size ? batch.x.subarray(0, (batch.x.length / batch.size) * n) : batch.x
          const r = await engine.evaluateCounting(x, this.batchShape(n), batch.y.subarray(0, n), mode)
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
    return this.exclusive(async () => {
      let engine: NativeModel
      try {
        engine = this.native().foldBatchNorm()
      } catch (e) {
        throw fromNative(e)
      }
      return this.wrap(engine)
    })
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
   */
  toFullSpike(): Promise<Model> {
    return this.exclusive(async () => {
      let engine: NativeModel
      try {
        engine = this.native().toFullSpike()
      } catch (e) {
        throw fromNative(e)
      }
      return this.wrap(engine)
    })
  }

  /** A Model around an engine derived from this one (its spec read back from the engine). */
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
      if (!Number.isInteger(n) || n < 1) throw argError('n', 'the batch size, a positive integer', n)
      try {
        return await this.native().audit(x, this.batchShape(n))
      } catch (e) {
        throw fromNative(e)
      }
    })
  }

  /** Mean firing rate of each neuron layer during the last forward. */
  firingRates(): { name: string; rate: number }[] {
    try {
      return this.native().firingRates()
    } catch (e) {
      throw fromNative(e)
    }
  }

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

/** A model made of layers applied in order. */
export function sequential(layers: LayerSpec[], options: ModelOptions): Model {
  return new Model(layers, options)
}
