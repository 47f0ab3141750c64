// A run folder: what one training run leaves on disk, written as it goes.
//
//   config.json                 the run's options (the keys of `dualstream train --config`)
//   metrics.jsonl, metrics.csv  one row per finished epoch
//   checkpoints/last.safetensors, best.safetensors, model.json (the model spec)
//   plots/*.svg                 loss, accuracy, firing rate per layer, gradient norm per block,
//                               energy per layer (when energy.json is there)
//   energy.json                 the energy report, when one was made
import {
  accessSync,
  appendFileSync,
  constants,
  existsSync,
  mkdirSync,
  readFileSync,
  statfsSync,
  statSync,
} from 'node:fs'
import { dirname, join, resolve } from 'node:path'
import { writeFileAtomic } from './checkpoint'
import { DualstreamError, describeValue } from './errors'
import type { EnergyChart, LinePoint } from './plot'
import { energyChartSvg, lineChartSvg } from './plot'

/** One finished epoch as the run folder records it. */
export interface MetricsRow {
  /** 1-based. */
  epoch: number
  /** Optimisation steps done since the run started. */
  step: number
  trainLoss: number
  trainAccuracy: number
  /** Mean firing rate over neuron layers and steps of the epoch. */
  firingRate: number
  learningRate: number
  testLoss?: number
  /** The full-spike network's accuracy (the AAP removed). */
  testAccuracy?: number
  /** Dual-stream models: the accuracy with the AAP kept. */
  dsnnTestAccuracy?: number
  samplesPerSecond: number
  seconds: number
  /** Per neuron layer on the test set, forward order. */
  firingRates?: { name: string; rate: number }[]
  /** Per dual-stream stage output, in the epoch's last step. */
  gradientNorms?: { name: string; norm: number }[]
  /** `'average'` when the test figures are the weight average's (`--ema`). */
  weights?: 'average'
}

const CSV_COLUMNS = [
  'epoch',
  'step',
  'trainLoss',
  'trainAccuracy',
  'testLoss',
  'testAccuracy',
  'dsnnTestAccuracy',
  'firingRate',
  'learningRate',
  'samplesPerSecond',
  'seconds',
] as const

/** Checks a metrics.jsonl row's fields (so a damaged row is named, not drawn as garbage). */
function checkRow(row: unknown, file: string, index: number): MetricsRow {
  const bad = (field: string, expected: string, got: unknown) =>
    new DualstreamError(
      'ERR_FORMAT',
      `${file}: row ${index + 1}: ${field}: expected ${expected}, got ${describeValue(got)}`,
    )
  if (typeof row !== 'object' || row === null || Array.isArray(row)) throw bad('the row', 'a JSON object', row)
  const r = row as Record<string, unknown>
  const numbers = [
    'epoch',
    'step',
    'trainLoss',
    'trainAccuracy',
    'firingRate',
    'learningRate',
    'samplesPerSecond',
    'seconds',
  ]
  for (const key of numbers) if (typeof r[key] !== 'number') throw bad(key, 'a number', r[key])
  for (const key of ['testLoss', 'testAccuracy', 'dsnnTestAccuracy'])
    if (r[key] !== undefined && r[key] !== null && typeof r[key] !== 'number') throw bad(key, 'a number', r[key])
  for (const [key, value] of [
    ['firingRates', 'rate'],
    ['gradientNorms', 'norm'],
  ] as const) {
    const list = r[key]
    if (list === undefined) continue
    if (!Array.isArray(list)) throw bad(key, `an array of { name, ${value} }`, list)
    list.forEach((e, i) => {
      if (typeof e !== 'object' || e === null || typeof e.name !== 'string' || typeof e[value] !== 'number')
        throw bad(`${key}[${i}]`, `{ name: string, ${value}: number }`, e)
    })
  }
  return r as unknown as MetricsRow
}

/** procfs and sysfs (statfs magic numbers): files there are not files, and Node's recursive
 * mkdir never returns on some of their paths. */
const PSEUDO_FILESYSTEMS = new Set([0x9fa0, 0x62656572])

/**
 * Checks that `dir` can become a run folder before anything is created: it is a folder or does
 * not exist yet, the nearest existing folder above it is a writable folder on a real file
 * system (not /proc or /sys), and no file stands in its way.
 */
export function checkOutputDir(where: string, dir: string): void {
  if (dir.trim() === '') throw new DualstreamError('ERR_ARG', `${where}: expected a folder path, got ""`)
  let path = resolve(dir)
  for (;;) {
    let stat: ReturnType<typeof statSync>
    try {
      stat = statSync(path)
    } catch {
      const parent = dirname(path)
      if (parent === path) break
      path = parent
      continue
    }
    if (!stat.isDirectory()) {
      throw new DualstreamError(
        'ERR_ARG',
        path === resolve(dir)
          ? `${where}: ${dir} is a file; expected a folder for the run (or a path that does not exist yet)`
          : `${where}: cannot create ${dir}: ${path} is a file, not a folder`,
      )
    }
    let type: number | undefined
    try {
      type = Number(statfsSync(path).type)
    } catch {
      type = undefined
    }
    if (type !== undefined && PSEUDO_FILESYSTEMS.has(type))
      throw new DualstreamError(
        'ERR_ARG',
        `${where}: ${dir} is on a kernel pseudo file system (${path}); expected a folder on disk`,
      )
    try {
      accessSync(path, constants.W_OK | constants.X_OK)
    } catch {
      throw new DualstreamError('ERR_ARG', `${where}: cannot create ${dir}: ${path} is not writable`)
    }
    return
  }
}

function csvLine(row: MetricsRow): string {
  return `${CSV_COLUMNS.map((c) => (row[c] === undefined ? '' : String(row[c]))).join(',')}\n`
}

/**
 * The files of one training run in `dir` (what `dualstream train --out` writes): config,
 * metrics, checkpoints, plots and the energy report.
 *
 * @example
 * ```ts
 * const run = new RunFolder('runs/first')
 * const rows = run.readMetrics()                  // one row per finished epoch
 * const model = await Model.load(run.bestCheckpoint)
 * ```
 */
export class RunFolder {
  /** The run folder. */
  readonly dir: string
  /** `config.json`: the run's resolved options. */
  readonly configPath: string
  /** `metrics.jsonl`: one JSON row per finished epoch. */
  readonly metricsJsonlPath: string
  /** `metrics.csv`: the same rows as CSV. */
  readonly metricsCsvPath: string
  /** `checkpoints/`. */
  readonly checkpointsDir: string
  /** `checkpoints/last.safetensors`: written after every epoch and on Ctrl-C. */
  readonly lastCheckpoint: string
  /** `checkpoints/best.safetensors`: the epoch with the best full-spike test accuracy. */
  readonly bestCheckpoint: string
  /** `checkpoints/model.json`: the model spec. */
  readonly specPath: string
  /** `plots/`: the SVG charts. */
  readonly plotsDir: string
  /** `energy.json`: the energy report, when one was made. */
  readonly energyPath: string

  /** Names the folder and its files; nothing is read or written until a method is called. */
  constructor(dir: string) {
    this.dir = dir
    this.configPath = join(dir, 'config.json')
    this.metricsJsonlPath = join(dir, 'metrics.jsonl')
    this.metricsCsvPath = join(dir, 'metrics.csv')
    this.checkpointsDir = join(dir, 'checkpoints')
    this.lastCheckpoint = join(this.checkpointsDir, 'last.safetensors')
    this.bestCheckpoint = join(this.checkpointsDir, 'best.safetensors')
    this.specPath = join(this.checkpointsDir, 'model.json')
    this.plotsDir = join(dir, 'plots')
    this.energyPath = join(dir, 'energy.json')
  }

  /** Creates the folder for a new run; refuses one that already holds a run. */
  create(config: object, spec: object): void {
    if (existsSync(this.configPath)) {
      throw new DualstreamError(
        'ERR_ARG',
        `--out: ${this.dir} already holds a run (config.json); choose another folder, or continue it with --resume ${this.dir}`,
      )
    }
    mkdirSync(this.checkpointsDir, { recursive: true })
    writeFileAtomic(this.configPath, `${JSON.stringify(config, null, 2)}\n`)
    writeFileAtomic(this.specPath, `${JSON.stringify(spec, null, 2)}\n`)
    this.rewriteMetrics([])
  }

  /** The run's `config.json`; ERR_NOT_FOUND when `dir` is not a run folder. */
  readConfig(): Record<string, unknown> {
    let text: string
    try {
      text = readFileSync(this.configPath, 'utf8')
    } catch (cause) {
      throw new DualstreamError('ERR_NOT_FOUND', `${this.dir} is not a run folder: cannot read ${this.configPath}`, {
        cause,
      })
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(text)
    } catch (err) {
      throw new DualstreamError('ERR_FORMAT', `${this.configPath} is not valid JSON: ${(err as Error).message}`)
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new DualstreamError(
        'ERR_FORMAT',
        `${this.configPath}: expected a JSON object of run options, got ${describeValue(parsed)}`,
      )
    return parsed as Record<string, unknown>
  }

  /** The rows of `metrics.jsonl` (none yet: an empty array). */
  readMetrics(): MetricsRow[] {
    if (!existsSync(this.metricsJsonlPath)) return []
    return readFileSync(this.metricsJsonlPath, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line, i) => {
        let row: unknown
        try {
          row = JSON.parse(line)
        } catch (err) {
          throw new DualstreamError(
            'ERR_FORMAT',
            `${this.metricsJsonlPath}: row ${i + 1} is not valid JSON: ${(err as Error).message}`,
          )
        }
        return checkRow(row, this.metricsJsonlPath, i)
      })
  }

  /** Appends one epoch to both metrics files (each row one write, so a crash loses at most it). */
  appendMetrics(row: MetricsRow): void {
    appendFileSync(this.metricsJsonlPath, `${JSON.stringify(row)}\n`)
    appendFileSync(this.metricsCsvPath, csvLine(row))
  }

  /** Replaces both metrics files with `rows` (a resumed run keeps the epochs its checkpoint has). */
  rewriteMetrics(rows: readonly MetricsRow[]): void {
    writeFileAtomic(this.metricsJsonlPath, rows.map((r) => `${JSON.stringify(r)}\n`).join(''))
    writeFileAtomic(this.metricsCsvPath, `${CSV_COLUMNS.join(',')}\n${rows.map(csvLine).join('')}`)
  }
}

/** Up to `max` rows spread over the run, the first and last included. */
function spread<T>(rows: readonly T[], max: number): T[] {
  if (rows.length <= max) return [...rows]
  return Array.from({ length: max }, (_, i) => rows[Math.round((i * (rows.length - 1)) / (max - 1))])
}

/**
 * Renders a run folder's plots from its metrics (and energy.json when present) into
 * `plots/`; returns the files written. Charts without data (no test set, a model without
 * dual-stream stages, no energy report) are skipped.
 */
export async function plotRun(dir: string): Promise<string[]> {
  const run = new RunFolder(dir)
  if (!existsSync(run.metricsJsonlPath))
    throw new DualstreamError('ERR_NOT_FOUND', `${dir} is not a run folder: no metrics.jsonl`)
  const rows = run.readMetrics()
  // Rendered one at a time when written: a failing chart then rejects while it is awaited.
  const charts: [string, () => Promise<string>][] = []
  if (rows.length > 0) {
    const loss: LinePoint[] = rows.flatMap((r) => [
      { x: r.epoch, y: r.trainLoss, series: 'train' },
      ...(r.testLoss === undefined ? [] : [{ x: r.epoch, y: r.testLoss, series: 'test' }]),
    ])
    charts.push([
      'loss.svg',
      () => lineChartSvg({ title: 'Loss', xTitle: 'epoch', yTitle: 'cross-entropy', points: loss }),
    ])
    const accuracy: LinePoint[] = rows.flatMap((r) => [
      { x: r.epoch, y: r.trainAccuracy, series: 'train' },
      ...(r.testAccuracy === undefined ? [] : [{ x: r.epoch, y: r.testAccuracy, series: 'test (full-spike)' }]),
      ...(r.dsnnTestAccuracy === undefined
        ? []
        : [{ x: r.epoch, y: r.dsnnTestAccuracy, series: 'test (DSNN, AAP kept)' }]),
    ])
    charts.push([
      'accuracy.svg',
      () => lineChartSvg({ title: 'Accuracy', xTitle: 'epoch', yTitle: 'accuracy', points: accuracy }),
    ])
    const rates = spread(
      rows.filter((r) => r.firingRates && r.firingRates.length > 0),
      4,
    ).flatMap((r) => r.firingRates!.map((f) => ({ x: f.name, y: f.rate, series: `epoch ${r.epoch}` })))
    if (rates.length > 0) {
      charts.push([
        'firing-rates.svg',
        () =>
          lineChartSvg({
            title: 'Firing rate per layer (test set)',
            xTitle: 'neuron layer (forward order)',
            yTitle: 'firing rate',
            points: rates,
          }),
      ])
    }
    // A log axis shows the orders of magnitude that matter here; a norm of exactly 0 cannot be drawn on it.
    const norms = spread(
      rows.filter((r) => r.gradientNorms && r.gradientNorms.length > 0),
      4,
    ).flatMap((r) =>
      r.gradientNorms!.filter((g) => g.norm > 0).map((g) => ({ x: g.name, y: g.norm, series: `epoch ${r.epoch}` })),
    )
    if (norms.length > 0) {
      charts.push([
        'gradient-norms.svg',
        () =>
          lineChartSvg({
            title: 'Gradient norm per block output',
            xTitle: 'block output',
            yTitle: 'L2 norm of dL/d(output)',
            logY: true,
            points: norms,
          }),
      ])
    }
  }
  if (existsSync(run.energyPath)) {
    let report: EnergyChart
    try {
      report = JSON.parse(readFileSync(run.energyPath, 'utf8')) as EnergyChart
    } catch (err) {
      throw new DualstreamError('ERR_FORMAT', `${run.energyPath} is not valid JSON: ${(err as Error).message}`)
    }
    charts.push([
      'energy.svg',
      () =>
        energyChartSvg(report).catch((err: Error) => {
          throw new DualstreamError('ERR_FORMAT', `${run.energyPath}: ${err.message}`)
        }),
    ])
  }
  mkdirSync(run.plotsDir, { recursive: true })
  const written: string[] = []
  for (const [name, svg] of charts) {
    const path = join(run.plotsDir, name)
    writeFileAtomic(path, await svg())
    written.push(path)
  }
  return written
}
