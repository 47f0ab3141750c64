// The HDF5 side of NIR files, through h5wasm (the HDF5 C library compiled to WebAssembly; no
// system libhdf5). A NIR file is a tree: groups hold a node's fields, datasets hold arrays,
// integers and strings. This module writes and reads that tree as plain JS values; graph.ts
// gives it the NIR meaning. The layout follows the `nir` Python package's `nir.write`:
// f32 arrays, i64 integers and integer arrays, variable-length UTF-8 strings (the `type` of
// every node, the `version`, the `(source, target)` string pairs of `edges`).
import { DualstreamError } from '../../errors'

/** One HDF5 value: a dataset (array with its shape, or a scalar) or a group of named values. */
export type H5Value =
  | { kind: 'f32'; shape: number[]; data: Float32Array }
  | { kind: 'i64'; shape: number[]; data: number[] }
  | { kind: 'str'; shape: number[]; data: string[] }
  | { kind: 'group'; entries: Record<string, H5Value> }

/** HDF5's datatype class of floating-point values (H5T_class_t). */
const H5T_FLOAT = 1

type H5wasm = typeof import('h5wasm/node', { with: { 'resolution-mode': 'import' }})

let loaded: Promise<H5wasm> | undefined

/** h5wasm is an ES module: loaded by a real dynamic import (kept as such in CommonJS output). */
async function h5(): Promise<H5wasm> {
  loaded ??= (async () => {
    const m = (await import('h5wasm/node')) as unknown as H5wasm & { default?: H5wasm }
    const lib = (m.default ?? m) as H5wasm
    await lib.ready
    return lib
  })()
  return loaded
}

export const f32 = (data: ArrayLike<number>, shape: number[] = [data.length]): H5Value => ({
  kind: 'f32',
  shape,
  data: Float32Array.from(data),
})
export const i64 = (data: number | number[]): H5Value =>
  typeof data === 'number' ? { kind: 'i64', shape: [], data: [data] } : { kind: 'i64', shape: [data.length], data }
export const str = (text: string): H5Value => ({ kind: 'str', shape: [], data: [text] })
export const group = (entries: Record<string, H5Value>): H5Value => ({ kind: 'group', entries })

type Group = InstanceType<H5wasm['Group']>

function writeEntries(lib: H5wasm, g: Group, entries: Record<string, H5Value>): void {
  for (const [name, v] of Object.entries(entries)) {
    if (v.kind === 'group') {
      writeEntries(lib, g.create_group(name), v.entries)
    } else if (v.kind === 'f32') {
      g.create_dataset({ name, data: v.data, shape: v.shape, dtype: '<f4' })
    } else if (v.kind === 'i64') {
      g.create_dataset({ name, data: BigInt64Array.from(v.data.map((x) => BigInt(x))), shape: v.shape, dtype: '<q' })
    } else {
      g.create_dataset({ name, data: v.shape.length === 0 ? v.data[0] : v.data, shape: v.shape })
    }
  }
}

/** Writes `root` (the file's top-level group) to `path`, replacing it. */
export async function writeH5(path: string, root: Record<string, H5Value>): Promise<void> {
  const lib = await h5()
  let file: InstanceType<H5wasm['File']> | undefined
  try {
    file = new lib.File(path, 'w')
    writeEntries(lib, file, root)
  } catch (cause) {
    throw new DualstreamError('ERR_IO', `cannot write ${path}: ${(cause as Error).message}`, { cause })
  } finally {
    file?.close()
  }
}

function readEntry(path: string, lib: H5wasm, entity: unknown, at: string): H5Value {
  if (entity instanceof lib.Group) {
    const entries: Record<string, H5Value> = {}
    for (const key of entity.keys()) entries[key] = readEntry(path, lib, entity.get(key), `${at}/${key}`)
    return { kind: 'group', entries }
  }
  if (entity instanceof lib.Dataset) {
    const shape = (entity.shape ?? []) as number[]
    const value = entity.value as unknown
    const meta = entity.metadata as { type: number; size: number; signed: boolean }
    if (typeof value === 'string') return { kind: 'str', shape, data: [value] }
    if (Array.isArray(value) && value.every((v) => typeof v === 'string'))
      return { kind: 'str', shape, data: value as string[] }
    if (value instanceof Float32Array || value instanceof Float64Array)
      return { kind: 'f32', shape, data: Float32Array.from(value) }
    if (typeof value === 'number' && meta.type === H5T_FLOAT)
      return { kind: 'f32', shape, data: Float32Array.of(value) }
    if (typeof value === 'bigint' || typeof value === 'number') return { kind: 'i64', shape, data: [Number(value)] }
    if (ArrayBuffer.isView(value)) {
      const arr = value as unknown as ArrayLike<number | bigint>
      return { kind: 'i64', shape, data: Array.from(arr, (x) => Number(x)) }
    }
    if (typeof value === 'boolean') return { kind: 'i64', shape, data: [value ? 1 : 0] }
    throw new DualstreamError('ERR_FORMAT', `${path}: dataset ${at} has a type NIR does not use`)
  }
  throw new DualstreamError('ERR_FORMAT', `${path}: ${at} is neither a group nor a dataset`)
}

/** Reads the whole file at `path` as its top-level group's entries. */
export async function readH5(path: string): Promise<Record<string, H5Value>> {
  const lib = await h5()
  let file: InstanceType<H5wasm['File']> | undefined
  try {
    file = new lib.File(path, 'r')
  } catch (cause) {
    throw new DualstreamError('ERR_NOT_FOUND', `cannot read ${path}: ${(cause as Error).message}`, { cause })
  }
  try {
    const root = readEntry(path, lib, file, '')
    return (root as { entries: Record<string, H5Value> }).entries
  } catch (cause) {
    if (cause instanceof DualstreamError) throw cause
    throw new DualstreamError('ERR_FORMAT', `${path}: not a readable HDF5 file: ${(cause as Error).message}`, { cause })
  } finally {
    file.close()
  }
}
