// Checkpoints in the safetensors format, read and written here (no dependency): an 8-byte
// little-endian header length, a JSON header naming each tensor's dtype, shape and byte range
// (plus a `__metadata__` map of strings), then the raw little-endian data. Other tools
// (Python's safetensors, for one) read our files, and we read theirs as long as they are F32.

import { createHash } from 'node:crypto'
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
import { endianness } from 'node:os'
import { basename, dirname, join } from 'node:path'
import { DualstreamError } from './errors'

export interface NamedTensor {
  name: string
  shape: number[]
  data: Float32Array
}

/** A decoded safetensors file: tensors in file order and the string metadata. */
export interface Safetensors {
  tensors: NamedTensor[]
  metadata: Record<string, string>
}

const METADATA = '__metadata__'
/** `__metadata__` key of the SHA-256 (hex) of the whole tensor data region, written by
 * `Model.save`: a flipped data byte is then refused at load. Files without it still load. */
export const DATA_CHECKSUM_KEY = 'dualstream_data_sha256'

function checkLittleEndian(): void {
  // Float32Array views use the platform's byte order; the format is little-endian.
  if (endianness() !== 'LE')
    throw new DualstreamError('ERR_INTERNAL', 'safetensors: big-endian platforms are not supported')
}

/** The bytes of a safetensors file holding `tensors` (all F32) and `metadata`. */
export function encodeSafetensors(
  tensors: readonly NamedTensor[],
  metadata: Record<string, string> = {},
  options: { checksum?: boolean } = {},
): Uint8Array {
  checkLittleEndian()
  const header: Record<string, unknown> = {}
  if (options.checksum) {
    const hash = createHash('sha256')
    for (const t of tensors) hash.update(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))
    metadata = { ...metadata, [DATA_CHECKSUM_KEY]: hash.digest('hex') }
  }
  if (Object.keys(metadata).length > 0) header[METADATA] = metadata
  let offset = 0
  for (const t of tensors) {
    if (t.name === METADATA || t.name in header)
      throw new DualstreamError(
        'ERR_ARG',
        `safetensors: tensor name ${JSON.stringify(t.name)} is reserved or used twice`,
      )
    const numel = t.shape.reduce((a, b) => a * b, 1)
    if (numel !== t.data.length) {
      throw new DualstreamError(
        'ERR_SHAPE',
        `safetensors: tensor ${t.name}: shape [${t.shape.join(', ')}] needs ${numel} values, got ${t.data.length}`,
      )
    }
    header[t.name] = { dtype: 'F32', shape: t.shape, data_offsets: [offset, offset + 4 * numel] }
    offset += 4 * numel
  }
  // Padded with spaces so the data starts 8-byte aligned, as the reference writer does.
  const text = new TextEncoder().encode(JSON.stringify(header))
  const headerLength = Math.ceil(text.length / 8) * 8
  const out = new Uint8Array(8 + headerLength + offset)
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength), true)
  out.set(text, 8)
  out.fill(0x20, 8 + text.length, 8 + headerLength)
  let at = 8 + headerLength
  for (const t of tensors) {
    out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at)
    at += t.data.byteLength
  }
  return out
}

function formatError(file: string, offset: number, message: string): DualstreamError {
  return new DualstreamError('ERR_FORMAT', `${file}: at byte offset ${offset}: ${message}`)
}

/**
 * Decodes a safetensors file's bytes. `file` names it in errors, which give the byte offset of
 * the problem (a truncated file, a bad header, a tensor whose data lies past the end).
 */
export function decodeSafetensors(
  bytes: Uint8Array,
  file = 'safetensors',
  options: { skipOtherDtypes?: boolean } = {},
): Safetensors {
  checkLittleEndian()
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buf.length < 8)
    throw formatError(
      file,
      buf.length,
      `the file ends after ${buf.length} bytes; a safetensors file starts with an 8-byte header length`,
    )
  const headerLength = buf.readBigUInt64LE(0)
  if (headerLength > BigInt(buf.length - 8)) {
    throw formatError(
      file,
      0,
      `the header length ${headerLength} runs past the end of the file (${buf.length} bytes): truncated or not a safetensors file`,
    )
  }
  const n = Number(headerLength)
  const dataStart = 8 + n
  let header: unknown
  try {
    header = JSON.parse(buf.toString('utf8', 8, dataStart))
  } catch (err) {
    const pos = /position (\d+)/.exec((err as Error).message)
    throw formatError(
      file,
      pos ? 8 + Number(pos[1]) : 8,
      `the JSON header (bytes 8 to ${dataStart}) is invalid: ${(err as Error).message}`,
    )
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header))
    throw formatError(file, 8, 'the header is not a JSON object')
  const entries = header as Record<string, unknown>
  const metadata: Record<string, string> = {}
  const rawMetadata = entries[METADATA]
  if (rawMetadata !== undefined) {
    if (typeof rawMetadata !== 'object' || rawMetadata === null)
      throw formatError(file, 8, `${METADATA} is not an object of strings`)
    for (const [k, v] of Object.entries(rawMetadata)) {
      if (typeof v !== 'string') throw formatError(file, 8, `${METADATA}.${k} is not a string`)
      metadata[k] = v
    }
  }
  const tensors: NamedTensor[] = []
  const dataLength = buf.length - dataStart
  for (const [name, raw] of Object.entries(entries)) {
    if (name === METADATA) continue
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown }
    // PyTorch state_dicts hold integer counters (BN's num_batches_tracked) an import skips.
    if (options.skipOtherDtypes && typeof e?.dtype === 'string' && e.dtype !== 'F32') continue
    if (e?.dtype !== 'F32')
      throw formatError(file, 8, `tensor ${name}: dtype ${JSON.stringify(e?.dtype)} is not supported (expected "F32")`)
    const shape = e.shape
    if (!Array.isArray(shape) || !shape.every((d) => Number.isInteger(d) && d >= 0))
      throw formatError(file, 8, `tensor ${name}: shape is not an array of non-negative integers`)
    const range = e.data_offsets
    if (
      !Array.isArray(range) ||
      range.length !== 2 ||
      !range.every((d) => Number.isInteger(d) && d >= 0) ||
      range[1] < range[0]
    ) {
      throw formatError(file, 8, `tensor ${name}: data_offsets is not [begin, end]`)
    }
    const [begin, end] = range as [number, number]
    const numel = (shape as number[]).reduce((a, b) => a * b, 1)
    if (end - begin !== 4 * numel) {
      throw formatError(
        file,
        dataStart + begin,
        `tensor ${name}: shape [${shape.join(', ')}] needs ${4 * numel} bytes but data_offsets span ${end - begin}`,
      )
    }
    if (end > dataLength) {
      throw formatError(
        file,
        buf.length,
        `tensor ${name}: its data runs to byte ${dataStart + end} but the file ends at byte ${buf.length} (truncated)`,
      )
    }
    // A copy: the data start need not be 4-byte aligned in a file someone else wrote.
    const data = new Float32Array(numel)
    new Uint8Array(data.buffer).set(buf.subarray(dataStart + begin, dataStart + end))
    tensors.push({ name, shape: shape as number[], data })
  }
  // Checked once every tensor lies inside the file, so a truncated file is reported as such.
  const expectedHash = metadata[DATA_CHECKSUM_KEY]
  if (expectedHash !== undefined) {
    const actual = createHash('sha256')
      .update(new Uint8Array(buf.buffer, buf.byteOffset + dataStart, buf.length - dataStart))
      .digest('hex')
    if (actual !== expectedHash)
      throw formatError(
        file,
        dataStart,
        `the tensor data (bytes ${dataStart} to ${buf.length}) does not match the SHA-256 in ${METADATA}.${DATA_CHECKSUM_KEY}: the file is damaged`,
      )
  }
  return { tensors, metadata }
}

/**
 * Writes `data` to `path` so that the file is either the old one or the complete new one,
 * never half of it: a temporary file in the same folder, fsync, rename over, fsync the folder.
 */
export function writeFileAtomic(path: string, data: string | Uint8Array): void {
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`)
  let fd: number | undefined
  try {
    fd = openSync(tmp, 'w')
    const bytes = typeof data === 'string' ? new TextEncoder().encode(data) : data
    let written = 0
    while (written < bytes.length) written += writeSync(fd, bytes, written, bytes.length - written)
    fsyncSync(fd)
    closeSync(fd)
    fd = undefined
    renameSync(tmp, path)
  } catch (cause) {
    if (fd !== undefined) closeSync(fd)
    try {
      unlinkSync(tmp)
    } catch {
      // The temporary file may not exist; the original error is what matters.
    }
    throw new DualstreamError('ERR_IO', `cannot write ${path}: ${(cause as Error).message}`, { cause })
  }
  try {
    // The rename is durable only once the folder's entry is on disk (not possible on Windows).
    const dir = openSync(dirname(path), 'r')
    try {
      fsyncSync(dir)
    } finally {
      closeSync(dir)
    }
  } catch {
    // Best effort: the file itself is complete either way.
  }
}

/**
 * Writes tensors (and string metadata) as a safetensors file, atomically: a temporary file,
 * fsync, then a rename, so an interrupted write never leaves a broken file.
 *
 * @example
 * ```ts
 * writeSafetensors('w.safetensors', [{ name: 'w', shape: [2, 2], data: new Float32Array(4) }], { note: 'zeros' })
 * ```
 */
export function writeSafetensors(
  path: string,
  tensors: readonly NamedTensor[],
  metadata: Record<string, string> = {},
  options: { checksum?: boolean } = {},
): void {
  writeFileAtomic(path, encodeSafetensors(tensors, metadata, options))
}

/**
 * Reads a safetensors file: its tensors and `__metadata__`. A truncated or corrupt file is
 * refused with the byte offset and what was expected there.
 *
 * @example
 * ```ts
 * const { tensors, metadata } = readSafetensors('runs/first/checkpoints/best.safetensors')
 * ```
 */
export function readSafetensors(path: string, options: { skipOtherDtypes?: boolean } = {}): Safetensors {
  let bytes: Uint8Array
  try {
    const file = readFileSync(path)
    bytes = new Uint8Array(file.buffer, file.byteOffset, file.byteLength)
  } catch (cause) {
    throw new DualstreamError('ERR_NOT_FOUND', `cannot read checkpoint ${path}: ${(cause as Error).message}`, { cause })
  }
  return decodeSafetensors(bytes, path, options)
}
