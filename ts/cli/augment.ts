// Training-set augmentation chosen by `dualstream train --augment`: random crops with zero
// padding, small random rotations, scalings and shifts (affine), elastic distortion, left-right
// flips and random erasing, run in Rust inside the batch pipeline (ts/data/transforms.ts).
import { FramesDataset, LoaderData, type TensorDataset, type TransformSpec, transforms } from '../data'
import type { LabelledData } from '../model'
import { usage } from './args'

export const AUGMENTS = [
  'none',
  'crop',
  'flip',
  'crop-flip',
  'affine',
  'affine-flip',
  'elastic',
  'affine-elastic',
  'erase',
  'flip-erase',
  'crop-flip-erase',
] as const
export type Augment = (typeof AUGMENTS)[number]

/** Zero padding on each side before a random crop back to the sample's size. */
export const CROP_PADDING = 2

/** `--augment affine`: angle within +-degrees, shifts within a fraction of the size, scale range. */
export const AFFINE = { degrees: 10, translate: 0.1, scale: [0.9, 1.1] as [number, number] }

/**
 * `--augment elastic`: torchvision's `ElasticTransform(alpha, sigma)` in its units (pixels move
 * by alpha / 2 times the blurred noise). Simard et al. (2003) distorted 29x29 digits with a
 * Gaussian of std 4 pixels and a scale of 34 pixels: alpha 68, sigma 4 here.
 */
export const ELASTIC = { alpha: 68, sigma: 4 }

/**
 * `--augment erase`: torchvision's `RandomErasing()` defaults (probability 0.5, area 2-33 %,
 * aspect ratio 0.3-3.3, value 0), close to what Zhong et al. (2017) used on Fashion-MNIST.
 */
export const ERASE = {
  p: 0.5,
  scale: [0.02, 0.33] as [number, number],
  ratio: [0.3, 3.3] as [number, number],
  value: 0,
}

function transformList(augment: Augment, height: number, width: number): TransformSpec[] {
  const parts = new Set(augment.split('-'))
  const list: TransformSpec[] = []
  if (parts.has('crop')) list.push(transforms.randomCrop([height, width], CROP_PADDING))
  if (parts.has('affine')) {
    const { degrees, translate, scale } = AFFINE
    list.push(transforms.randomAffine(degrees, { translate: [translate, translate], scale }))
  }
  if (parts.has('elastic')) list.push(transforms.elastic(ELASTIC.alpha, ELASTIC.sigma))
  if (parts.has('flip')) list.push(transforms.horizontalFlip())
  if (parts.has('erase')) list.push(transforms.randomErasing(ERASE))
  return list
}

/**
 * The training set seen through the augmentation: every epoch each sample gets its own crop
 * and flip, drawn from (seed, epoch, index), so a run (and a resumed run) stays reproducible.
 * Frames `[T, C, H, W]` get one crop and flip for all their time steps.
 */
export function augmentTrainSet(
  where: string,
  data: TensorDataset | FramesDataset | LoaderData,
  augment: Augment,
): LabelledData {
  if (augment === 'none') return data
  if (data instanceof LoaderData) {
    throw usage(
      `${where}: ${augment} is for data held in memory (the named data sets, data folders and event folders); an image folder has its own training crops and flips, so give --augment none`,
    )
  }
  const shape = data.sampleShape
  if (data instanceof FramesDataset) {
    const [, , height, width] = shape
    return new LoaderData(data, {
      pipeline: { transforms: transformList(augment, height, width) },
      sampleShape: shape,
      numClasses: data.numClasses,
      timeMajor: true,
    })
  }
  if (shape.length !== 3) {
    throw usage(
      `${where}: ${augment} needs image samples [C, H, W], the data has samples [${shape.join(', ')}]; give --augment none`,
    )
  }
  const images: TensorDataset = data
  return new LoaderData(
    {
      length: images.length,
      get: (i: number) => {
        const s = images.get(i)
        return { image: s.x, shape, label: s.y }
      },
    },
    {
      pipeline: { transforms: transformList(augment, shape[1], shape[2]) },
      sampleShape: shape,
      numClasses: data.numClasses,
    },
  )
}
