import { argError } from '../errors'

// Seeds are uint32 so that a seed printed in a log can be typed back in and reproduce the run
// exactly; wider seeds would be silently folded.
const UINT32 = 0x1_0000_0000

export function assertSeed(argument: string, seed: unknown): asserts seed is number {
  if (typeof seed !== 'number' || !Number.isInteger(seed) || seed < 0 || seed >= UINT32) {
    throw argError(argument, 'an integer in [0, 2^32)', seed)
  }
}

/** Avalanche hash of a uint32 (lowbias32); used to decorrelate nearby seeds such as (seed, epoch) and (seed, epoch+1). */
export function mix32(x: number): number {
  x = x >>> 0
  x ^= x >>> 16
  x = Math.imul(x, 0x21f0aaad)
  x ^= x >>> 15
  x = Math.imul(x, 0x735a2d97)
  x ^= x >>> 15
  return x >>> 0
}

/**
 * Derives an independent uint32 seed from a base seed and a path of stream ids (e.g. an epoch),
 * so every epoch's shuffle can be reproduced on its own without replaying earlier epochs.
 */
export function deriveSeed(seed: number, ...streams: number[]): number {
  assertSeed('seed', seed)
  let h = mix32(seed ^ 0x9e3779b9)
  for (let i = 0; i < streams.length; i++) {
    const s = streams[i]
    if (!Number.isInteger(s) || s < 0 || s >= UINT32) throw argError(`streams[${i}]`, 'an integer in [0, 2^32)', s)
    h = mix32((h + Math.imul(s ^ 0x85ebca6b, 0xc2b2ae35)) | 0)
  }
  return h
}

/** mulberry32: tiny, fast, statistically adequate for shuffling; not for cryptography. */
export class Rng {
  private state: number

  /** A generator started from a uint32 `seed`. */
  constructor(seed: number) {
    assertSeed('seed', seed)
    this.state = seed >>> 0
  }

  /** The next uniform uint32. */
  nextUint32(): number {
    this.state = (this.state + 0x6d2b79f5) | 0
    let t = Math.imul(this.state ^ (this.state >>> 15), 1 | this.state)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return (t ^ (t >>> 14)) >>> 0
  }

  /** Uniform float in [0, 1). */
  next(): number {
    return this.nextUint32() / UINT32
  }

  /** Uniform integer in [0, n). Rejection sampling so large n (e.g. 60,000) is not biased by `% n`. */
  int(n: number): number {
    if (!Number.isInteger(n) || n <= 0 || n > UINT32) throw argError('n', 'an integer in [1, 2^32]', n)
    const limit = UINT32 - (UINT32 % n)
    let r = this.nextUint32()
    while (r >= limit) r = this.nextUint32()
    return r % n
  }
}

/** Fisher–Yates shuffle in place. */
export function shuffleInPlace<T extends { length: number; [i: number]: unknown }>(array: T, rng: Rng): T {
  for (let i = array.length - 1; i > 0; i--) {
    const j = rng.int(i + 1)
    const tmp = array[i]
    array[i] = array[j]
    array[j] = tmp
  }
  return array
}

/** A uniformly random permutation of 0..n-1. */
export function permutation(n: number, rng: Rng): Uint32Array {
  if (!Number.isInteger(n) || n < 0 || n >= UINT32) throw argError('n', 'an integer in [0, 2^32)', n)
  const out = new Uint32Array(n)
  for (let i = 0; i < n; i++) out[i] = i
  return shuffleInPlace(out, rng)
}
