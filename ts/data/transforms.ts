// Seeded augmentations, described as plain specs and run in Rust inside the batch pipeline
// (crates/data/src/transforms.rs). Spatial transforms treat a sample's frames as one picture:
// every time step and channel gets the same crop and flip.
import { argError } from '../errors'

export type TransformSpec =
  | { kind: 'temporalDelete'; keep: number }
  | { kind: 'randomCrop'; size: [number, number]; padding?: number }
  | { kind: 'horizontalFlip'; p?: number }
  | {
      kind: 'randomResizedCrop'
      size: [number, number]
      scale?: [number, number]
      ratio?: [number, number]
      antialias?: boolean
    }
  | { kind: 'randomAffine'; degrees: number; translate?: [number, number]; scale?: [number, number] }
  | { kind: 'elastic'; alpha: number; sigma: number; p?: number }
  | {
      kind: 'randomErasing'
      p?: number
      scale?: [number, number]
      ratio?: [number, number]
      value?: number | number[] | 'random'
    }
  | { kind: 'resize'; size: number | [number, number] }
  | { kind: 'centerCrop'; size: [number, number] }
  | { kind: 'normalize'; mean: number[]; std: number[] }

function posInt(name: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1) throw argError(name, 'a positive integer', v)
  return v
}

function size(name: string, v: number | [number, number]): [number, number] {
  const s = typeof v === 'number' ? [v, v] : v
  if (!Array.isArray(s) || s.length !== 2) throw argError(name, 'a size [height, width] or a number', v)
  return [posInt(`${name}[0]`, s[0]), posInt(`${name}[1]`, s[1])]
}

function range(name: string, v: [number, number], lo: number, hi: number): [number, number] {
  if (!Array.isArray(v) || v.length !== 2 || !(v[0] > lo && v[0] <= v[1] && v[1] <= hi))
    throw argError(name, `[min, max] with ${lo} < min <= max <= ${hi}`, v)
  return v
}

/**
 * Seeded augmentations for a `DataLoader` pipeline (`pipeline.transforms`), applied in order to
 * each sample's frames; every time step and channel gets the same crop and flip.
 *
 * @example
 * ```ts
 * const pipeline = { frames: { split: 'number', frames: 16 } as const,
 *   transforms: [transforms.temporalDelete(14), transforms.randomCrop(128, 4), transforms.horizontalFlip()] }
 * ```
 */
export const transforms = {
  /** Keeps `keep` of the T frames, chosen at random, in their order (SpikingJelly's random_temporal_delete). */
  temporalDelete: (keep: number): TransformSpec => ({
    kind: 'temporalDelete',
    keep: posInt('temporalDelete keep', keep),
  }),
  /** Zero-pads `padding` pixels on each side, then cuts a random window of `size`. */
  randomCrop: (cropSize: number | [number, number], padding = 0): TransformSpec => {
    if (!Number.isInteger(padding) || padding < 0)
      throw argError('randomCrop padding', 'a non-negative integer', padding)
    return { kind: 'randomCrop', size: size('randomCrop size', cropSize), padding }
  },
  /** Mirrors left-right with probability `p`. */
  horizontalFlip: (p = 0.5): TransformSpec => {
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw argError('horizontalFlip p', 'a probability in [0, 1]', p)
    return { kind: 'horizontalFlip', p }
  },
  /**
   * torchvision's RandomResizedCrop (area fraction `scale`, aspect `ratio`, bilinear resize).
   * `antialias: true` resizes with Pillow's antialiased filter, as torchvision does on PIL
   * images (image folders); the default samples plain bilinear.
   */
  randomResizedCrop: (
    outSize: number | [number, number],
    options: { scale?: [number, number]; ratio?: [number, number]; antialias?: boolean } = {},
  ): TransformSpec => {
    if (options.antialias !== undefined && typeof options.antialias !== 'boolean')
      throw argError('randomResizedCrop antialias', 'a boolean', options.antialias)
    return {
      kind: 'randomResizedCrop',
      size: size('randomResizedCrop size', outSize),
      scale: range('randomResizedCrop scale', options.scale ?? [0.08, 1], 0, 1),
      ratio: range('randomResizedCrop ratio', options.ratio ?? [3 / 4, 4 / 3], 0, Infinity),
      antialias: options.antialias ?? false,
    }
  },
  /**
   * torchvision's RandomAffine without shear: turns the picture by an angle uniform in
   * [-degrees, degrees] and scales it by a factor uniform in `scale` about its centre, then
   * shifts it by whole pixels uniform within `translate` ([across, down], fractions of the
   * width and height); bilinear samples, zeros outside.
   */
  randomAffine: (
    degrees: number,
    options: { translate?: [number, number]; scale?: [number, number] } = {},
  ): TransformSpec => {
    if (typeof degrees !== 'number' || !Number.isFinite(degrees) || degrees < 0)
      throw argError('randomAffine degrees', 'a finite angle >= 0', degrees)
    const translate = options.translate ?? [0, 0]
    if (
      !Array.isArray(translate) ||
      translate.length !== 2 ||
      !translate.every((t) => typeof t === 'number' && t >= 0 && t <= 1)
    )
      throw argError('randomAffine translate', 'fractions [across, down] in [0, 1]', translate)
    const scale = options.scale ?? [1, 1]
    if (
      !Array.isArray(scale) ||
      scale.length !== 2 ||
      !(scale[0] > 0 && scale[0] <= scale[1] && Number.isFinite(scale[1]))
    )
      throw argError('randomAffine scale', '[min, max] with 0 < min <= max, finite', scale)
    return { kind: 'randomAffine', degrees, translate: [translate[0], translate[1]], scale: [scale[0], scale[1]] }
  },
  /**
   * torchvision's ElasticTransform(alpha, sigma), applied with probability `p`: uniform(-1, 1)
   * noise per pixel and axis, blurred by a Gaussian of std `sigma` pixels (8 sigma + 1 taps,
   * reflected at the borders) and scaled by `alpha`, moves each pixel by `alpha / 2` times the
   * blurred noise (torchvision's units: `alpha` scales [-1, 1] grid coordinates per size);
   * bilinear samples, zeros outside. Every time step and channel gets the same field.
   * For 28x28 digits `elastic(68, 4)` is Simard et al.'s alpha 34, sigma 4 (pixel units).
   */
  elastic: (alpha: number, sigma: number, p = 1): TransformSpec => {
    if (typeof alpha !== 'number' || !Number.isFinite(alpha) || alpha < 0)
      throw argError('elastic alpha', 'a finite magnitude >= 0', alpha)
    if (typeof sigma !== 'number' || !Number.isFinite(sigma) || sigma < 0)
      throw argError('elastic sigma', 'a finite std >= 0 (pixels)', sigma)
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw argError('elastic p', 'a probability in [0, 1]', p)
    return { kind: 'elastic', alpha, sigma, p }
  },
  /**
   * torchvision's RandomErasing: with probability `p`, one box of area fraction uniform in
   * `scale` and aspect ratio (height / width) log-uniform in `ratio` (up to 10 tries for one
   * that fits) is set to `value`: a number, one number per channel, or `'random'` (standard
   * normal noise). Every time step gets the same box. Defaults are torchvision's.
   */
  randomErasing: (
    options: {
      p?: number
      scale?: [number, number]
      ratio?: [number, number]
      value?: number | number[] | 'random'
    } = {},
  ): TransformSpec => {
    const p = options.p ?? 0.5
    if (typeof p !== 'number' || !(p >= 0 && p <= 1)) throw argError('randomErasing p', 'a probability in [0, 1]', p)
    const scale = options.scale ?? [0.02, 0.33]
    if (!Array.isArray(scale) || scale.length !== 2 || !(scale[0] >= 0 && scale[0] <= scale[1] && scale[1] <= 1))
      throw argError('randomErasing scale', 'area fractions [min, max] with 0 <= min <= max <= 1', scale)
    const ratio = options.ratio ?? [0.3, 3.3]
    if (
      !Array.isArray(ratio) ||
      ratio.length !== 2 ||
      !(ratio[0] > 0 && ratio[0] <= ratio[1] && Number.isFinite(ratio[1]))
    )
      throw argError('randomErasing ratio', 'aspect ratios [min, max] with 0 < min <= max, finite', ratio)
    const value = options.value ?? 0
    const finite = (v: unknown) => typeof v === 'number' && Number.isFinite(v)
    if (!(value === 'random' || finite(value) || (Array.isArray(value) && value.length > 0 && value.every(finite))))
      throw argError('randomErasing value', "a finite number, one per channel, or 'random'", value)
    return {
      kind: 'randomErasing',
      p,
      scale: [scale[0], scale[1]],
      ratio: [ratio[0], ratio[1]],
      value: Array.isArray(value) ? [...value] : value,
    }
  },
  /**
   * torchvision's Resize with Pillow's antialiased bilinear filter: a number sets the shorter
   * side (the longer one keeps the aspect ratio, rounded down), `[height, width]` both.
   */
  resize: (outSize: number | [number, number]): TransformSpec => ({
    kind: 'resize',
    size: typeof outSize === 'number' ? posInt('resize size', outSize) : size('resize size', outSize),
  }),
  /** torchvision's CenterCrop (zero padding when the crop is larger than the image). */
  centerCrop: (cropSize: number | [number, number]): TransformSpec => ({
    kind: 'centerCrop',
    size: size('centerCrop size', cropSize),
  }),
  /** `(x - mean[c]) / std[c]` per channel. */
  normalize: (mean: number[], std: number[]): TransformSpec => {
    if (!Array.isArray(mean) || !Array.isArray(std) || mean.length !== std.length || mean.length === 0) {
      throw argError('normalize mean/std', 'two arrays with one value per channel', { mean, std })
    }
    std.forEach((s, i) => {
      if (typeof s !== 'number' || !(s > 0) || !Number.isFinite(s))
        throw argError(`normalize std[${i}]`, 'a positive number', s)
    })
    return { kind: 'normalize', mean: [...mean], std: [...std] }
  },
}
