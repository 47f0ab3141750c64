/**
 * Errors thrown by dualstream's TypeScript layer. `code` is stable and meant for programmatic
 * handling; `message` is for humans and may change.
 *
 * Known codes:
 * - `INVALID_ARGUMENT`: a caller-supplied value has the wrong type, shape or range.
 * - `INVALID_DATA`: a data file or buffer is malformed (not the caller's argument itself).
 * - `NOT_FOUND`: a required file or package could not be located.
 */
export class DualstreamError extends Error {
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.name = 'DualstreamError'
    this.code = code
  }
}

/** Short, bounded description of a received value for error messages (never dumps a whole array). */
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

/** `<argument>: expected <expected>, received <received>` as an INVALID_ARGUMENT error. */
export function invalidArgument(argument: string, expected: string, received: unknown): DualstreamError {
  return new DualstreamError('INVALID_ARGUMENT', `${argument}: expected ${expected}, received ${describeValue(received)}`)
}
