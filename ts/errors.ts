/**
 * Every error dualstream throws is a DualstreamError. `code` is stable, for programs; `message`
 * is for people and names the layer, argument or file, what was received and what was expected.
 *
 * Codes: ERR_ARG (a caller's argument has the wrong type or range), ERR_SHAPE, ERR_VALUE,
 * ERR_NON_FINITE, ERR_SPEC, ERR_STATE (from the engine), ERR_DATA (a data file is malformed),
 * ERR_FORMAT (an event or dataset file breaks its format: names the file and byte offset or row),
 * ERR_NOT_FOUND (a file or package is missing), ERR_IO, ERR_BUSY, ERR_DISPOSED, ERR_INTERNAL.
 */
export class DualstreamError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DualstreamError'
    this.code = code
  }
}

/** Rethrows a native error as a DualstreamError: the binding sets `code` on every error it throws. */
export function fromNative(err: unknown): DualstreamError {
  if (err instanceof DualstreamError) return err
  const message = err instanceof Error ? err.message : String(err)
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^ERR_[A-Z_]+$/.test(code)
    ? new DualstreamError(code, message)
    : new DualstreamError('ERR_INTERNAL', message, { cause: err })
}

/** Short, bounded description of a received value for error messages (never dumps a whole array). */
/** Awaits a call into the engine, its native error turned into a `DualstreamError`. */
export async function engineCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (e) {
    throw fromNative(e)
  }
}

export function describeValue(value: unknown): string {
  if (value === null) return 'null'
  if (value === undefined) return 'undefined'
  if (typeof value === 'number') return Number.isNaN(value) ? 'NaN' : String(value)
  if (typeof value === 'string') return value.length > 40 ? `a string of length ${value.length}` : JSON.stringify(value)
  if (typeof value === 'boolean' || typeof value === 'bigint') return String(value)
  if (Array.isArray(value)) return `an array of length ${value.length}`
  if (ArrayBuffer.isView(value)) {
    const len = (value as ArrayBufferView & { length?: number }).length
    return `a ${value.constructor.name}${len === undefined ? '' : ` of length ${len}`}`
  }
  if (typeof value === 'function') return 'a function'
  const ctor = (value as { constructor?: { name?: string } }).constructor?.name
  return ctor && ctor !== 'Object' ? `a ${ctor}` : 'an object'
}

/** `<argument>: expected <expected>, received <received>` as an ERR_ARG error. */
export function argError(argument: string, expected: string, received: unknown): DualstreamError {
  return new DualstreamError('ERR_ARG', `${argument}: expected ${expected}, received ${describeValue(received)}`)
}
