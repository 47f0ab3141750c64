export { TensorDataset } from './dataset'
export type { TensorDatasetOptions, LabelArray, OrderOptions, BatchOptions, Batch } from './dataset'
export { loadFashionMnist, FASHION_MNIST_CLASSES } from './fashion-mnist'
export type { FashionMnist, LoadFashionMnistOptions, SkippedRecord } from './fashion-mnist'
export { loadMnist, mnistTestCount, MNIST_CLASSES } from './mnist'
export type { Mnist, LoadMnistOptions } from './mnist'
export { Rng, deriveSeed, mix32, permutation, shuffleInPlace } from './random'
export { integrateEvents, FrameCache, frameSpecJson, toNativeEvents } from './frames'
export type { Events, FrameSpec, Frames, CacheOutcome } from './frames'
export { transforms } from './transforms'
export type { TransformSpec } from './transforms'
export { encoders, encodeImage } from './encoders'
export type { EncoderSpec } from './encoders'
export { syntheticEvents, NFashionMnist } from './synthetic'
export type { SyntheticOptions } from './synthetic'
export { DataLoader, FramesDataset, LoaderData, pipelineJson } from './loader'
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
} from './loader'
export * from './events'
export * from './datasets'
export { ImageFolder, imageTransforms, IMAGENET_MEAN, IMAGENET_STD } from './image-folder'
export type { ImageFolderOptions, ImageFolderDataOptions, ImageTransformOptions } from './image-folder'
