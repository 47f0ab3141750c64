// Public API of dualstream, by name. Helpers shared by the CLI, tests and benchmarks that are
// not part of it live in './internal'.
import native = require('./native')

export type { ReestimateOptions } from './bn-reestimate'
export { reestimateBatchNorm } from './bn-reestimate'
export type { NamedTensor, Safetensors } from './checkpoint'
export { decodeSafetensors, encodeSafetensors, readSafetensors, writeSafetensors } from './checkpoint'
export type { Batch, BatchOptions, LabelArray, OrderOptions, TensorDatasetOptions } from './data/dataset'
export { TensorDataset } from './data/dataset'
export type { FolderOptions, Split } from './data/datasets'
export {
  Cifar10,
  Cifar10Dvs,
  Cifar100,
  DvsGesture,
  EventFolderDataset,
  Idx,
  ImageFolderDataset,
  NMnist,
} from './data/datasets'
export type { EncoderSpec } from './data/encoders'
export { encodeImage, encoders } from './data/encoders'
export type {
  CifarBatch,
  CifarKind,
  EventFile,
  EventFormat,
  EventStream,
  GestureWindow,
  IdxFile,
  IdxTypedArray,
  ReadEventsOptions,
  WriteEventsOptions,
} from './data/events'
export {
  detectEventFormat,
  readCifarBatch,
  readEventFile,
  readEvents,
  readGestureLabels,
  readIdx,
  writeCifarBatch,
  writeEvents,
  writeIdx,
} from './data/events'
export type { FashionMnist, LoadFashionMnistOptions, SkippedRecord } from './data/fashion-mnist'
export { FASHION_MNIST_CLASSES, loadFashionMnist } from './data/fashion-mnist'
export type { CacheOutcome, Events, FrameSpec, Frames } from './data/frames'
export { FrameCache, integrateEvents } from './data/frames'
export type {
  DataLoaderOptions,
  EventSample,
  FileSample,
  FramesSample,
  ImageSample,
  IndexedDataset,
  LoadedBatch,
  LoaderDataOptions,
  LoaderSample,
  PipelineSpec,
} from './data/loader'
export { DataLoader, FramesDataset, LoaderData } from './data/loader'
export type { LoadMnistOptions, Mnist } from './data/mnist'
export { loadMnist, MNIST_CLASSES } from './data/mnist'
export type { SyntheticOptions } from './data/synthetic'
export { NFashionMnist, syntheticEvents } from './data/synthetic'
export type { TransformSpec } from './data/transforms'
export { transforms } from './data/transforms'
export type { Energies, EnergyOptions, EnergyPreset, EnergyReport, EnergyTotals, LayerOps, RateReport } from './energy'
export { ENERGY_PRESETS, formatEnergyTable } from './energy'
export { DualstreamError } from './errors'
// layers.ts holds only the public layer builders and their option types.
export * from './layers'
export type {
  AuditResult,
  BatchEnd,
  Checkpoint,
  EmaOptions,
  EpochEnd,
  Evaluation,
  FitOptions,
  FitResult,
  FitState,
  InferenceMode,
  LabelledData,
  LayerInfo,
  MemoryMode,
  ModelInfo,
  ModelOptions,
  TrainingConfig,
  TrainingMemory,
} from './model'
export { Model, readCheckpoint, sequential } from './model'
export type { LossSpec, OptimizerSpec, ScheduleSpec } from './optim'
export { adam, adamW, losses, schedules, sgd } from './optim'
export type { BarChart, ChartFrame, EnergyChart, LineChart, LinePoint } from './plot'
export { barChartSvg, energyChartSvg, lineChartSvg } from './plot'
export { ProgressDisplay } from './progress'
export type { MetricsRow } from './run'
export { plotRun, RunFolder } from './run'
export type {
  Connect,
  DualConnect,
  DualStage,
  DualStreamBlockSpec,
  DualStreamSpec,
  Encoding,
  LayerSpec,
  ModelSpec,
  NeuronParams,
  Pair,
  SurrogateSpec,
} from './spec'
export type { SpikformerOptions } from './spikformer'
export {
  spikformer,
  spikformerNeuron,
  spikingMlp,
  spikingPatchSplitting,
  spikingSelfAttention,
} from './spikformer'
export type {
  BlockKind,
  Net7bOptions,
  Net7bRepeatOptions,
  ResnetOptions,
  SmallNetOptions,
  WideNet7bOptions,
  ZooFamily,
  ZooNet,
  ZooNeuron,
} from './zoo'
export {
  convDsnn,
  convSnn,
  dsnn7b,
  dsnn18,
  dsnn34,
  dsnn50,
  dsnn101,
  sew7b,
  sewResnet18,
  sewResnet34,
  sewResnet50,
  sewResnet101,
  smallDsnn,
  spikingResnet7b,
  spikingResnet18,
  spikingResnet34,
  spikingResnet50,
  spikingResnet101,
  wideDsnn7b,
  wideSew7b,
  wideSpikingResnet7b,
} from './zoo'

/** Version of the Rust engine inside the loaded binary. */
export const engineVersion: () => string = native.engineVersion
/**
 * Bytes the engine's buffers (tensors, packed spike maps, work buffers) hold in this process now
 * (`live`) and at most since the last call with `resetPeak` (`peak`).
 */
export const engineMemory: (resetPeak: boolean) => { live: number; peak: number } = native.engineMemory
export type { ImageFolderDataOptions, ImageFolderOptions, ImageTransformOptions } from './data/image-folder'
export { IMAGENET_MEAN, IMAGENET_STD, ImageFolder, imageTransforms } from './data/image-folder'
export type { ImportedModel, NirGraph, NirNode, NirReadOptions, NirWriteOptions } from './interop/nir'
export {
  DEFAULT_DT as NIR_DEFAULT_DT,
  LAYER_TO_NIR,
  nirToSpec,
  readNirGraph,
  specToNir,
  writeNirGraph,
} from './interop/nir'
export type { PyTorchExport, PyTorchExportOptions, TorchSource } from './interop/pytorch'
export { TORCH_SOURCES, torchNameMap } from './interop/pytorch'
