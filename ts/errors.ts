/** Every error dualstream throws. `code` is stable, for programs: ERR_SHAPE, ERR_VALUE,
 *  ERR_NON_FINITE, ERR_SPEC, ERR_STATE, ERR_IO, ERR_BUSY, ERR_DISPOSED, ERR_INTERNAL, ERR_ARG. */
export class DualstreamError extends Error {
  readonly code: string
  constructor(code: string, message: string) {
    super(message)
    this.name = 'DualstreamError'
    this.code = code
  }
}

/** Rethrows a native error (message `[CODE] text`) as a DualstreamError. */
export function fromNative(err: unknown): DualstreamError {
  if (err instanceof DualstreamError) return err
  const message = err instanceof Error ? err.message : String(err)
  const match = /^\[([A-Z_]+)\] ([\s\S]*)$/.exec(message)
  return match ? new DualstreamError(match[1], match[2]) : new DualstreamError('ERR_INTERNAL', message)
}

export function argError(argument: string, expected: string, received: unknown): DualstreamError {
  return new DualstreamError('ERR_ARG', `${argument}: expected ${expected}, got ${describe(received)}`)
}

export function describe(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return `array [${value.slice(0, 6).map(describe).join(', ')}${value.length > 6 ? ', ...' : ''}]`
  if (ArrayBuffer.isView(value)) return `${value.constructor.name} of length ${(value as unknown as ArrayLike<number>).length}`
  if (typeof value === 'string') return JSON.stringify(value)
  if (typeof value === 'object') return `object ${JSON.stringify(value)?.slice(0, 80)}`
  return `${typeof value} ${String(value)}`
}
