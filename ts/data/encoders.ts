// Encoders of static images into [T, C, H, W] input sequences (crates/data/src/encoders.rs):
// direct (the image at every step), Poisson rate (spike with probability = intensity), latency
// (one spike at step round((1 - v) (T - 1)) for v > 0: brighter pixels fire earlier; v <= 0 never).
import { argError, fromNative } from '../errors'

import native = require('../native')

import type { Frames } from './frames'
import { assertSeed } from './random'

export type EncoderSpec = { kind: 'direct' | 'poisson' | 'latency'; timeSteps: number }

function steps(v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1)
    throw argError('encoder timeSteps', 'a positive integer', v)
  return v
}

/**
 * Image encoders for a `DataLoader` pipeline (`pipeline.encoder`) or {@link encodeImage}: how a
 * static image becomes T input steps.
 *
 * @example
 * ```ts
 * const spikes = await encodeImage(image, [1, 28, 28], encoders.poisson(8), 0) // [8, 1, 28, 28]
 * ```
 */
export const encoders = {
  /** The image itself at every step. */
  direct: (timeSteps: number): EncoderSpec => ({ kind: 'direct', timeSteps: steps(timeSteps) }),
  /** A spike at each step with probability equal to the pixel value (seeded). */
  poisson: (timeSteps: number): EncoderSpec => ({ kind: 'poisson', timeSteps: steps(timeSteps) }),
  /** One spike per pixel, earlier for brighter pixels (none for 0). */
  latency: (timeSteps: number): EncoderSpec => ({ kind: 'latency', timeSteps: steps(timeSteps) }),
}

/** Encodes one image `[C, H, W]` (values in [0, 1]) into `[T, C, H, W]`; `seed` drives Poisson spikes. */
export async function encodeImage(
  image: Float32Array,
  shape: number[],
  encoder: EncoderSpec,
  seed = 0,
): Promise<Frames> {
  if (!(image instanceof Float32Array)) throw argError('encodeImage image', 'a Float32Array', image)
  if (!Array.isArray(shape) || shape.length !== 3) throw argError('encodeImage shape', '[C, H, W]', shape)
  assertSeed('encodeImage seed', seed)
  steps(encoder?.timeSteps)
  try {
    const out = await native.prepareBatchNative([{ image, shape }], JSON.stringify({ encoder }), [seed])
    // [T, 1, C, H, W] -> [T, C, H, W]
    return { shape: [out.shape[0], ...out.shape.slice(2)], data: out.data }
  } catch (e) {
    throw fromNative(e)
  }
}
