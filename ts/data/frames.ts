// Event streams to frames ([T, 2, H, W] event counts, channel 0 OFF, 1 ON), the way SpikingJelly
// integrates them, and a disk cache of frames. The work runs in Rust on the libuv pool.
import { argError, DualstreamError, fromNative } from '../errors'

import native = require('../native')

import type { NativeEvents } from '../../native'

/**
 * An event-camera recording, struct of arrays. `t` is in microseconds (Float64Array holds
 * integers exactly up to 2^53; BigInt64Array and plain arrays are accepted too); `p` is 0 (OFF)
 * or 1 (ON). Parsers of event files produce this shape.
 */
export interface Events {
  width: number
  height: number
  t: Float64Array | BigInt64Array | ArrayLike<number>
  x: Uint16Array | ArrayLike<number>
  y: Uint16Array | ArrayLike<number>
  p: Uint8Array | ArrayLike<number | boolean>
}

/**
 * How events become frames (see crates/data/src/frames.rs for the exact index arithmetic):
 * - `number`: `frames` frames of about N / frames events each, the last taking the remainder;
 * - `time`: `frames` equal time windows from the first to the last event (a window without
 *   events is an error, as in SpikingJelly);
 * - `duration`: one frame per `durationUs` microseconds (T depends on the recording).
 * `downscale` f sums each f x f block of pixels (e.g. 2 turns DVS128's 128 x 128 into 64 x 64).
 */
export type FrameSpec =
  | { split: 'number' | 'time'; frames: number; downscale?: number }
  | { split: 'duration'; durationUs: number; downscale?: number }

/** A dense float tensor: row-major `data` of the given `shape`. */
export interface Frames {
  shape: number[]
  data: Float32Array
}

function posInt(name: string, v: unknown, max = 0x7fffffff): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max)
    throw argError(name, `an integer in [1, ${max}]`, v)
  return v
}

/** Checks a frame spec and returns its JSON for the engine. */
export function frameSpecJson(spec: FrameSpec, name = 'frames'): string {
  if (typeof spec !== 'object' || spec === null)
    throw argError(name, 'a frame spec such as { split: "number", frames: 16 }', spec)
  const downscale = spec.downscale === undefined ? 1 : posInt(`${name}.downscale`, spec.downscale, 65535)
  if (spec.split === 'number' || spec.split === 'time') {
    return JSON.stringify({ split: spec.split, frames: posInt(`${name}.frames`, spec.frames), downscale })
  }
  if (spec.split === 'duration') {
    const d = spec.durationUs
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 1)
      throw argError(`${name}.durationUs`, 'a positive integer (microseconds)', d)
    return JSON.stringify({ split: 'duration', durationUs: d, downscale })
  }
  throw argError(`${name}.split`, '"number", "time" or "duration"', (spec as { split?: unknown }).split)
}

function typed<T extends Uint16Array | Uint8Array>(name: string, v: unknown, make: (n: number) => T, max: number): T {
  if (v instanceof (make(0).constructor as new (n: number) => T)) return v as T
  if (v === null || typeof v !== 'object' || typeof (v as ArrayLike<unknown>).length !== 'number')
    throw argError(name, 'an array of integers', v)
  const src = v as ArrayLike<number | boolean>
  const out = make(src.length)
  for (let i = 0; i < src.length; i++) {
    const e = Number(src[i])
    if (!Number.isInteger(e) || e < 0 || e > max) throw argError(`${name}[${i}]`, `an integer in [0, ${max}]`, src[i])
    out[i] = e
  }
  return out
}

/** Events in the binding's form (copies only what is not already the right typed array). */
export function toNativeEvents(events: Events, name = 'events'): NativeEvents {
  if (typeof events !== 'object' || events === null)
    throw argError(name, 'an events object { width, height, t, x, y, p }', events)
  const width = posInt(`${name}.width`, events.width, 65535)
  const height = posInt(`${name}.height`, events.height, 65535)
  let t: Float64Array
  if (events.t instanceof Float64Array) t = events.t
  else if (events.t instanceof BigInt64Array) t = Float64Array.from(events.t, (v) => Number(v))
  else if (
    events.t !== null &&
    typeof events.t === 'object' &&
    typeof (events.t as ArrayLike<number>).length === 'number'
  )
    t = Float64Array.from(events.t as ArrayLike<number>)
  else throw argError(`${name}.t`, 'timestamps in microseconds (Float64Array, BigInt64Array or an array)', events.t)
  const x = typed(`${name}.x`, events.x, (n) => new Uint16Array(n), 65535)
  const y = typed(`${name}.y`, events.y, (n) => new Uint16Array(n), 65535)
  const p = typed(`${name}.p`, events.p, (n) => new Uint8Array(n), 1)
  if (x.length !== t.length || y.length !== t.length || p.length !== t.length) {
    throw new DualstreamError(
      'ERR_ARG',
      `${name}: expected t, x, y and p of the same length, received ${t.length}, ${x.length}, ${y.length}, ${p.length}`,
    )
  }
  return { width, height, t, x, y, p }
}

/** Integrates a stream into frames `[T, 2, H, W]` (counts; OFF then ON). */
export async function integrateEvents(events: Events, spec: FrameSpec): Promise<Frames> {
  const json = frameSpecJson(spec)
  const ev = toNativeEvents(events)
  try {
    return await native.integrateEvents(ev, json)
  } catch (e) {
    throw fromNative(e)
  }
}

export type CacheOutcome = 'hit' | 'built' | 'rebuilt'

/**
 * Frames cached on disk, one file per (source file, part, frame spec); the format is documented
 * in crates/data/src/frame_cache.rs. The key covers the frame spec and the source's absolute
 * path, size and modification time, so editing the recording or changing T misses the cache.
 * A damaged file (truncated, wrong magic, bad checksum) is rebuilt, never trusted.
 */
export class FrameCache {
  readonly dir: string

  /** A cache in the folder `dir` (created on the first write). */
  constructor(dir: string) {
    if (typeof dir !== 'string' || dir.length === 0) throw argError('FrameCache dir', 'a folder path', dir)
    this.dir = dir
  }

  /**
   * The frames of `source` (`part` names a piece of it, e.g. a labelled time window, '' for all
   * of it), integrating `loadEvents()` on a miss.
   */
  async get(
    source: string,
    spec: FrameSpec,
    loadEvents: () => Events | Promise<Events>,
    part = '',
  ): Promise<{ frames: Frames; outcome: CacheOutcome; reason?: string }> {
    if (typeof source !== 'string' || source.length === 0)
      throw argError('FrameCache.get source', 'the path of the recording', source)
    if (typeof part !== 'string') throw argError('FrameCache.get part', 'a string', part)
    if (typeof loadEvents !== 'function')
      throw argError('FrameCache.get loadEvents', 'a function returning the events', loadEvents)
    const json = frameSpecJson(spec)
    try {
      const found = await native.frameCacheLookup(this.dir, source, part, json)
      if (found.status === 'hit' && found.frames) return { frames: found.frames, outcome: 'hit' }
      const events = toNativeEvents(await loadEvents(), `events of ${source}`)
      const frames = await native.frameCacheBuild(this.dir, source, part, json, events)
      return found.status === 'damaged'
        ? { frames, outcome: 'rebuilt', reason: found.reason ?? undefined }
        : { frames, outcome: 'built' }
    } catch (e) {
      throw fromNative(e)
    }
  }
}
