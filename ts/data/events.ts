import { open } from 'node:fs/promises'
import { extname } from 'node:path'
import { argError, DualstreamError, engineCall, fromNative } from '../errors'

import native = require('../native')

import type { CifarBatch, GestureWindow, NativeEvents } from '../../native'

// The binding's own objects, documented where they are made (crates/node/src/data.rs).
export type { CifarBatch, GestureWindow }

/** Event-camera file formats dualstream reads and writes. */
export type EventFormat = 'nmnist' | 'aedat2' | 'aedat3' | 'aedat4'

/**
 * Events in file order, struct of arrays. `t` is in microseconds (exact up to 2^53), `p` is 0
 * (OFF) or 1 (ON), the SpikingJelly convention; `width` x `height` is the sensor.
 */
export type EventStream = NativeEvents

/** The events of a file and what its header says. */
export interface EventFile {
  events: EventStream
  format: EventFormat
  /** AEDAT 2.0 header `# Creation time: System.currentTimeMillis()`, when present. */
  creationTimeMs?: number
  /** AEDAT 4.0 packet compression: 'none' | 'lz4' | 'lz4-high' | 'zstd' | 'zstd-high'. */
  compression?: string
  /** AEDAT 4.0: polarity packets read. */
  eventPackets?: number
}

export interface ReadEventsOptions {
  /** Detected from the file's first bytes (AEDAT version line) or a `.bin` extension when omitted. */
  format?: EventFormat
  /** Sensor size of formats that do not store it: N-MNIST `.bin` (default 34x34), AEDAT 3.1 (default 128x128). */
  width?: number
  height?: number
}

export interface WriteEventsOptions {
  /** Taken from the extension when omitted: `.bin` -> nmnist, `.aedat4` -> aedat4 (`.aedat` is ambiguous). */
  format?: EventFormat
  /** AEDAT 2.0 header field. */
  creationTimeMs?: number
  /** AEDAT 4.0 packet compression, 'lz4' (default) or 'none'. */
  compression?: 'lz4' | 'none'
  /** AEDAT 4.0 events per packet (default 4096). */
  eventsPerPacket?: number
}

const FORMATS: readonly EventFormat[] = ['nmnist', 'aedat2', 'aedat3', 'aedat4']

function checkFormat(argument: string, format: unknown): EventFormat {
  if (typeof format !== 'string' || !FORMATS.includes(format as EventFormat)) {
    throw argError(argument, `one of ${FORMATS.map((f) => `'${f}'`).join(', ')}`, format)
  }
  return format as EventFormat
}

function checkPath(argument: string, path: unknown): string {
  if (typeof path !== 'string' || path.length === 0) throw argError(argument, 'a file path string', path)
  return path
}

/** The format of an event file, from its AEDAT version line or, for N-MNIST, its `.bin` extension. */
export async function detectEventFormat(path: string): Promise<EventFormat> {
  checkPath('detectEventFormat(path)', path)
  let head: Uint8Array
  try {
    const file = await open(path, 'r')
    try {
      const buffer = new Uint8Array(12)
      const { bytesRead } = await file.read(buffer, 0, 12, 0)
      head = buffer.subarray(0, bytesRead)
    } finally {
      await file.close()
    }
  } catch (cause) {
    throw new DualstreamError('ERR_IO', `${path}: ${(cause as Error).message}`, { cause })
  }
  const text = String.fromCharCode(...head)
  if (text.startsWith('#!AER-DAT4')) return 'aedat4'
  if (text.startsWith('#!AER-DAT3')) return 'aedat3'
  if (text.startsWith('#!AER-DAT2')) return 'aedat2'
  if (extname(path).toLowerCase() === '.bin') return 'nmnist'
  throw new DualstreamError(
    'ERR_FORMAT',
    `${path}, byte 0: expected an AEDAT version line (#!AER-DAT2.0, #!AER-DAT3.1 or #!AER-DAT4.0) or an N-MNIST .bin file; pass { format } to say which`,
  )
}

function optionalSize(argument: string, value: unknown): number | undefined {
  if (value === undefined) return undefined
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw argError(argument, 'an integer in 1..65535', value)
  }
  return value
}

/** Reads an event file with its header information (on the thread pool; streaming parse). */
export async function readEventFile(path: string, opts: ReadEventsOptions = {}): Promise<EventFile> {
  checkPath('readEvents(path)', path)
  if (typeof opts !== 'object' || opts === null) throw argError('readEvents(opts)', 'an options object', opts)
  const format =
    opts.format === undefined ? await detectEventFormat(path) : checkFormat('readEvents(opts.format)', opts.format)
  const width = optionalSize('readEvents(opts.width)', opts.width)
  const height = optionalSize('readEvents(opts.height)', opts.height)
  try {
    const file = await native.readEventFile(path, format, width, height)
    return {
      events: file.events,
      format,
      ...(file.creationTimeMs == null ? {} : { creationTimeMs: file.creationTimeMs }),
      ...(file.compression == null ? {} : { compression: file.compression }),
      ...(file.eventPackets == null ? {} : { eventPackets: file.eventPackets }),
    }
  } catch (e) {
    throw fromNative(e)
  }
}

/**
 * Reads the events of an N-MNIST / N-Caltech101 `.bin`, AEDAT 2.0 (CIFAR10-DVS, in SpikingJelly's
 * orientation), AEDAT 3.1 (DVS128 Gesture) or AEDAT 4.0 file. Errors name the file and byte offset.
 *
 * @example
 * ```ts
 * const events = await readEvents('user01_natural.aedat')   // the format is detected
 * console.log(events.width, events.height, events.t.length)
 * ```
 */
export async function readEvents(path: string, opts: ReadEventsOptions = {}): Promise<EventStream> {
  return (await readEventFile(path, opts)).events
}

function checkEvents(argument: string, events: unknown): EventStream {
  const e = events as Partial<EventStream> | null
  if (typeof e !== 'object' || e === null) throw argError(argument, 'an EventStream object', events)
  const fields: [keyof EventStream, new (...args: never[]) => unknown][] = [
    ['t', Float64Array],
    ['x', Uint16Array],
    ['y', Uint16Array],
    ['p', Uint8Array],
  ]
  for (const [name, type] of fields) {
    if (!(e[name] instanceof type)) throw argError(`${argument}.${name}`, `a ${type.name}`, e[name])
  }
  for (const name of ['width', 'height'] as const) optionalSize(`${argument}.${name}`, e[name] ?? NaN)
  return e as EventStream
}

/**
 * Writes events atomically (temp file, fsync, rename): nothing half-written is left on failure.
 * The format follows the extension (`.bin`: N-MNIST, `.aedat4`: AEDAT 4.0); a `.aedat` file
 * needs `opts.format` ('aedat2' or 'aedat3').
 *
 * @example
 * ```ts
 * await writeEvents('/tmp/out.aedat4', events)
 * await writeEvents('/tmp/out.aedat', events, { format: 'aedat2' })
 * ```
 */
export async function writeEvents(path: string, events: EventStream, opts: WriteEventsOptions = {}): Promise<void> {
  checkPath('writeEvents(path)', path)
  checkEvents('writeEvents(events)', events)
  if (typeof opts !== 'object' || opts === null) throw argError('writeEvents(opts)', 'an options object', opts)
  let format = opts.format
  if (format === undefined) {
    const ext = extname(path).toLowerCase()
    if (ext === '.bin') format = 'nmnist'
    else if (ext === '.aedat4') format = 'aedat4'
    else throw argError('writeEvents(opts.format)', `a format for ${path} ('.aedat' may be aedat2 or aedat3)`, format)
  }
  checkFormat('writeEvents(opts.format)', format)
  await engineCall(() =>
    native.writeEventFile(path, format, events, {
      creationTimeMs: opts.creationTimeMs,
      compression: opts.compression,
      eventsPerPacket: opts.eventsPerPacket,
    }),
  )
}

/** Reads a DVS128 Gesture `*_labels.csv` (`class,startTime_usec,endTime_usec`). */
export async function readGestureLabels(path: string): Promise<GestureWindow[]> {
  checkPath('readGestureLabels(path)', path)
  return engineCall(() => native.readGestureLabels(path))
}

export type CifarKind = 'cifar10' | 'cifar100'

function checkCifarKind(argument: string, kind: unknown): CifarKind {
  if (kind !== 'cifar10' && kind !== 'cifar100') throw argError(argument, "'cifar10' or 'cifar100'", kind)
  return kind
}

/** Reads a whole CIFAR-10 (`data_batch_N.bin`) or CIFAR-100 (`train.bin`) binary batch. */
export async function readCifarBatch(path: string, kind: CifarKind): Promise<CifarBatch> {
  checkPath('readCifarBatch(path)', path)
  checkCifarKind('readCifarBatch(kind)', kind)
  return engineCall(() => native.readCifarBatch(path, kind))
}

/** Writes a CIFAR binary batch atomically; `coarseLabels` is required for CIFAR-100 only. */
export async function writeCifarBatch(
  path: string,
  kind: CifarKind,
  batch: { pixels: Uint8Array; labels: Uint8Array; coarseLabels?: Uint8Array },
): Promise<void> {
  checkPath('writeCifarBatch(path)', path)
  checkCifarKind('writeCifarBatch(kind)', kind)
  if (!(batch?.pixels instanceof Uint8Array))
    throw argError('writeCifarBatch(batch.pixels)', 'a Uint8Array', batch?.pixels)
  if (!(batch.labels instanceof Uint8Array))
    throw argError('writeCifarBatch(batch.labels)', 'a Uint8Array', batch.labels)
  await engineCall(() => native.writeCifarBatch(path, kind, batch.pixels, batch.labels, batch.coarseLabels))
}

export type IdxTypedArray = Uint8Array | Int8Array | Int16Array | Int32Array | Float32Array | Float64Array

/** An IDX array: `dims` (e.g. [60000, 28, 28]) and its values in row-major order. */
export interface IdxFile {
  dims: number[]
  data: IdxTypedArray
}

const IDX_TYPES = {
  u8: Uint8Array,
  i8: Int8Array,
  i16: Int16Array,
  i32: Int32Array,
  f32: Float32Array,
  f64: Float64Array,
} as const

/** Reads an IDX file (MNIST's original distribution), plain or gzip'd. */
export async function readIdx(path: string): Promise<IdxFile> {
  checkPath('readIdx(path)', path)
  const file = await engineCall(() => native.readIdxFile(path))
  const Type = IDX_TYPES[file.dtype as keyof typeof IDX_TYPES]
  // Copy into a fresh buffer: the native bytes need not be aligned for wider element types.
  const bytes = new Uint8Array(file.bytes)
  return { dims: file.dims, data: new Type(bytes.buffer, 0, bytes.length / Type.BYTES_PER_ELEMENT) }
}

/** Writes an uncompressed IDX file atomically. */
export async function writeIdx(path: string, idx: IdxFile): Promise<void> {
  checkPath('writeIdx(path)', path)
  const entry = Object.entries(IDX_TYPES).find(([, Type]) => idx?.data instanceof Type)
  if (!entry)
    throw argError(
      'writeIdx(idx.data)',
      'a Uint8Array, Int8Array, Int16Array, Int32Array, Float32Array or Float64Array',
      idx?.data,
    )
  if (!Array.isArray(idx.dims) || !idx.dims.every((d) => Number.isInteger(d) && d >= 0)) {
    throw argError('writeIdx(idx.dims)', 'an array of non-negative integers', idx.dims)
  }
  const bytes = new Uint8Array(idx.data.buffer, idx.data.byteOffset, idx.data.byteLength)
  await engineCall(() => native.writeIdxFile(path, idx.dims, entry[0], bytes))
}
