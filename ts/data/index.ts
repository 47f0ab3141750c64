export type { Batch, BatchOptions, LabelArray, OrderOptions, TensorDatasetOptions } from './dataset'
export { TensorDataset } from './dataset'
export * from './datasets'
export type { EncoderSpec } from './encoders'
export { encodeImage, encoders } from './encoders'
export * from './events'
export type { FashionMnist, LoadFashionMnistOptions, SkippedRecord } from './fashion-mnist'
export { FASHION_MNIST_CLASSES, loadFashionMnist } from './fashion-mnist'
export type { CacheOutcome, Events, FrameSpec, Frames } from './frames'
export { FrameCache, frameSpecJson, integrateEvents, toNativeEvents } from './frames'
export type { ImageFolderDataOptions, ImageFolderOptions, ImageTransformOptions } from './image-folder'
export { IMAGENET_MEAN, IMAGENET_STD, ImageFolder, imageTransforms } from './image-folder'
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
export { DataLoader, FramesDataset, LoaderData, pipelineJson } from './loader'
export type { LoadMnistOptions, Mnist } from './mnist'
export { loadMnist, MNIST_CLASSES, mnistTestCount } from './mnist'
export { deriveSeed, mix32, permutation, Rng, shuffleInPlace } from './random'
export type { SyntheticOptions } from './synthetic'
export { NFashionMnist, syntheticEvents } from './synthetic'
export type { TransformSpec } from './transforms'
export { transforms } from './transforms'
