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
