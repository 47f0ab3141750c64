import { argError } from './errors'

/** The part of a writable stream the display uses; `process.stdout`/`process.stderr` satisfy it. */
export interface ProgressStream {
  write(chunk: string): unknown
  isTTY?: boolean
  columns?: number
}

export type ProgressMode = 'bar' | 'lines' | 'silent'

export interface ProgressOptions {
  stream: ProgressStream
  epochs: number
  stepsPerEpoch: number
  /** Default: `'bar'` when `stream.isTTY`, otherwise `'lines'`. */
  mode?: ProgressMode
  /** Minimum milliseconds between bar redraws. Default 100 (≈10 redraws/s). */
  throttleMs?: number
  /**
   * In `lines` mode, also print a progress line each time this fraction of an epoch completes.
   * Default 0.1; 0 prints only at epoch ends.
   */
  linesEvery?: number
  /** Width of the bar in characters. Default 20. */
  barWidth?: number
  /** 1-based epoch training starts at (when resuming), so the ETA counts only remaining work. Default 1. */
  startEpoch?: number
  /** Steps of `startEpoch` already done before (a run resumed mid-epoch), also left out of the ETA. Default 0. */
  startStep?: number
  /** Millisecond clock; injectable for tests. Default `performance.now`. */
  now?: () => number
}

export interface StepMetrics {
  /** 1-based epoch number. */
  epoch: number
  /** Steps completed in this epoch, 1..stepsPerEpoch. */
  step: number
  samplesPerSecond?: number
  loss?: number
  /** Fraction in [0, 1]. */
  accuracy?: number
  /** Mean spikes per neuron per timestep, in [0, 1]. */
  firingRate?: number
}

export interface EpochMetrics {
  /** 1-based epoch number. */
  epoch: number
  loss?: number
  accuracy?: number
  firingRate?: number
  samplesPerSecond?: number
  testLoss?: number
  testAccuracy?: number
  /** Epoch duration; measured by the display when omitted. */
  seconds?: number
}

/** `0.4s`, `9.5s`, `42s`, `2m05s`, `1h02m`, `3d04h`; `--` for unknown/negative/non-finite. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--'
  if (seconds < 10) return `${(Math.floor(seconds * 10) / 10).toFixed(1)}s`
  const s = Math.floor(seconds)
  if (s < 60) return `${s}s`
  const pad = (n: number): string => String(n).padStart(2, '0')
  if (s < 3600) return `${Math.floor(s / 60)}m${pad(s % 60)}s`
  if (s < 86400) return `${Math.floor(s / 3600)}h${pad(Math.floor((s % 3600) / 60))}m`
  return `${Math.floor(s / 86400)}d${pad(Math.floor((s % 86400) / 3600))}h`
}

/**
 * A bar of exactly `width` characters: `#` for done, `.` for remaining. Rounds down, so the bar
 * is full only when the work is; NaN counts as 0 and values outside [0, 1] are clamped.
 */
export function renderBar(fraction: number, width: number): string {
  if (!Number.isInteger(width) || width < 0) throw argError('width', 'a non-negative integer', width)
  const f = Number.isNaN(fraction) ? 0 : Math.min(1, Math.max(0, fraction))
  const filled = Math.floor(f * width + 1e-9)
  return '#'.repeat(filled) + '.'.repeat(width - filled)
}

/** Throughput with a k/M suffix: `850`, `12.3k`, `1.20M`. */
export function formatRate(perSecond: number): string {
  if (!Number.isFinite(perSecond) || perSecond < 0) return '--'
  if (perSecond < 1000) return perSecond < 10 ? perSecond.toFixed(1) : String(Math.round(perSecond))
  if (perSecond < 1e6) return `${(perSecond / 1e3).toFixed(1)}k`
  return `${(perSecond / 1e6).toFixed(2)}M`
}

/** A [0, 1] fraction as a percentage with one decimal: `0.8523` → `85.2%`. */
export function formatPercent(fraction: number): string {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(1)}%` : '--'
}

function formatMetric(value: number, digits: number): string {
  return Number.isFinite(value) ? value.toFixed(digits) : String(value).toLowerCase()
}

function metricParts(m: {
  loss?: number
  accuracy?: number
  firingRate?: number
  testLoss?: number
  testAccuracy?: number
}): string[] {
  const parts: string[] = []
  if (m.loss !== undefined) parts.push(`loss ${formatMetric(m.loss, 4)}`)
  if (m.accuracy !== undefined) parts.push(`acc ${formatPercent(m.accuracy)}`)
  if (m.firingRate !== undefined) parts.push(`rate ${formatMetric(m.firingRate, 3)}`)
  if (m.testLoss !== undefined) parts.push(`test loss ${formatMetric(m.testLoss, 4)}`)
  if (m.testAccuracy !== undefined) parts.push(`test acc ${formatPercent(m.testAccuracy)}`)
  return parts
}

function positiveInt(argument: string, v: unknown): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) throw argError(argument, 'a positive integer', v)
  return v
}

/**
 * Training progress for the CLI: a redrawn single-line bar on terminals, plain lines when output
 * is piped/logged (where `\r` redraws would pile up into one huge line), or nothing.
 */
export class ProgressDisplay {
  readonly mode: ProgressMode
  private readonly stream: ProgressStream
  private readonly epochs: number
  private readonly stepsPerEpoch: number
  private readonly throttleMs: number
  private readonly linesEvery: number
  private readonly barWidth: number
  private readonly now: () => number
  private readonly startedAt: number
  private readonly baseSteps: number
  private lastDraw = -Infinity
  private lastDrawnText = ''
  private barVisible = false
  private epochStartedAt: number
  private currentEpoch: number
  private lastLineBucket = 0
  private finished = false

  /** A display for `epochs` epochs of `stepsPerEpoch` steps on `opts.stream` (mode chosen from the stream when not given). */
  constructor(opts: ProgressOptions) {
    if (typeof opts !== 'object' || opts === null) throw argError('opts', 'an options object', opts)
    if (!opts.stream || typeof opts.stream.write !== 'function') {
      throw argError('stream', 'a writable stream with write()', opts.stream)
    }
    this.stream = opts.stream
    this.epochs = positiveInt('epochs', opts.epochs)
    this.stepsPerEpoch = positiveInt('stepsPerEpoch', opts.stepsPerEpoch)
    const mode = opts.mode ?? (opts.stream.isTTY ? 'bar' : 'lines')
    if (mode !== 'bar' && mode !== 'lines' && mode !== 'silent') {
      throw argError('mode', `'bar', 'lines' or 'silent'`, mode)
    }
    this.mode = mode
    this.throttleMs = opts.throttleMs ?? 100
    if (!(this.throttleMs >= 0)) throw argError('throttleMs', 'a non-negative number', opts.throttleMs)
    this.linesEvery = opts.linesEvery ?? 0.1
    if (!(this.linesEvery >= 0 && this.linesEvery <= 1))
      throw argError('linesEvery', 'a number in [0, 1]', opts.linesEvery)
    this.barWidth = opts.barWidth ?? 20
    if (!Number.isInteger(this.barWidth) || this.barWidth < 0)
      throw argError('barWidth', 'a non-negative integer', opts.barWidth)
    const startEpoch = opts.startEpoch ?? 1
    positiveInt('startEpoch', startEpoch)
    const startStep = opts.startStep ?? 0
    if (!Number.isInteger(startStep) || startStep < 0 || startStep >= this.stepsPerEpoch) {
      throw argError('startStep', `an integer in [0, ${this.stepsPerEpoch})`, opts.startStep)
    }
    this.baseSteps = (startEpoch - 1) * this.stepsPerEpoch + startStep
    // The first epoch is timed from construction: the CLI creates the display as training starts.
    this.currentEpoch = startEpoch
    this.now = opts.now ?? (() => performance.now())
    this.startedAt = this.now()
    this.epochStartedAt = this.startedAt
  }

  /** Seconds left for the whole run, from the average step time since the display was created. */
  eta(epoch: number, step: number): number {
    const done = (epoch - 1) * this.stepsPerEpoch + step - this.baseSteps
    const remaining = this.epochs * this.stepsPerEpoch - (epoch - 1) * this.stepsPerEpoch - step
    const elapsed = (this.now() - this.startedAt) / 1000
    if (done <= 0 || !(elapsed > 0)) return NaN
    return (elapsed * remaining) / done
  }

  /** Reports a finished step (redrawn at most every `throttleMs` on a terminal). */
  update(m: StepMetrics): void {
    if (this.finished || this.mode === 'silent') return
    if (m.epoch !== this.currentEpoch) this.beginEpoch(m.epoch)
    const now = this.now()
    if (this.mode === 'bar') {
      // Always draw the epoch's last step so the bar never freezes short of full.
      if (now - this.lastDraw < this.throttleMs && m.step < this.stepsPerEpoch) return
      this.lastDraw = now
      this.drawBar(this.barText(m))
      return
    }
    if (this.linesEvery <= 0) return
    const bucket = Math.floor(m.step / this.stepsPerEpoch / this.linesEvery + 1e-9)
    // The bucket that completes the epoch is left to endEpoch, which prints the full summary.
    if (bucket > this.lastLineBucket && m.step < this.stepsPerEpoch) {
      this.lastLineBucket = bucket
      this.stream.write(`${this.stepLineText(m)}\n`)
    }
  }

  /** Reports a finished epoch (one line with its metrics). */
  endEpoch(m: EpochMetrics): void {
    if (this.finished || this.mode === 'silent') return
    if (m.epoch !== this.currentEpoch) this.beginEpoch(m.epoch)
    const seconds = m.seconds ?? (this.now() - this.epochStartedAt) / 1000
    const parts = [`epoch ${m.epoch}/${this.epochs}`, ...metricParts(m)]
    if (m.samplesPerSecond !== undefined) parts.push(`${formatRate(m.samplesPerSecond)} samples/s`)
    parts.push(formatDuration(seconds))
    const line = parts.join('  ')
    if (this.mode === 'bar') this.clearBar()
    this.stream.write(`${line}\n`)
    // A new epoch starts after this one ends, even if the caller never calls update() with it.
    this.currentEpoch = m.epoch + 1
    this.epochStartedAt = this.now()
    this.lastLineBucket = 0
  }

  /** Writes a message on its own line without corrupting the bar (which is redrawn after). */
  log(message: string): void {
    if (this.mode === 'silent') return
    if (this.mode === 'bar' && this.barVisible) {
      this.clearBar()
      this.stream.write(`${message}\n`)
      this.drawBar(this.lastDrawnText)
      return
    }
    this.stream.write(`${message}\n`)
  }

  /** Ends the display with a total-time line; later calls to any method are ignored. */
  finish(message?: string): void {
    if (this.finished) return
    this.finished = true
    if (this.mode === 'silent') return
    if (this.mode === 'bar') this.clearBar()
    const total = formatDuration((this.now() - this.startedAt) / 1000)
    this.stream.write(`${message ?? `finished in ${total}`}\n`)
  }

  private beginEpoch(epoch: number): void {
    this.currentEpoch = epoch
    this.epochStartedAt = this.now()
    this.lastLineBucket = 0
  }

  private rateAndEta(m: StepMetrics): string[] {
    const parts: string[] = []
    if (m.samplesPerSecond !== undefined) parts.push(`${formatRate(m.samplesPerSecond)} samples/s`)
    parts.push(`ETA ${formatDuration(this.eta(m.epoch, m.step))}`)
    return parts
  }

  private barText(m: StepMetrics): string {
    const bar = `[${renderBar(m.step / this.stepsPerEpoch, this.barWidth)}]`
    return [
      `epoch ${m.epoch}/${this.epochs}`,
      `${bar} ${m.step}/${this.stepsPerEpoch}`,
      ...this.rateAndEta(m),
      ...metricParts(m),
    ].join('  ')
  }

  private stepLineText(m: StepMetrics): string {
    const pct = Math.floor((100 * m.step) / this.stepsPerEpoch)
    return [
      `epoch ${m.epoch}/${this.epochs}`,
      `step ${m.step}/${this.stepsPerEpoch} (${pct}%)`,
      ...this.rateAndEta(m),
      ...metricParts(m),
    ].join('  ')
  }

  private drawBar(text: string): void {
    // A line that wraps makes `\r` return to the wrapped part only, so stay one short of the width.
    const columns = this.stream.columns
    const fitted = columns !== undefined && columns > 1 && text.length > columns - 1 ? text.slice(0, columns - 1) : text
    this.stream.write(`\r${fitted}\x1b[K`)
    this.lastDrawnText = text
    this.barVisible = true
  }

  private clearBar(): void {
    if (!this.barVisible) return
    this.stream.write('\r\x1b[K')
    this.barVisible = false
  }
}
