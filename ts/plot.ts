// Charts as SVG, rendered in Node without a browser: Vega-Lite specs compiled and rendered by
// Vega's headless view. Both packages are ESM-only, hence the dynamic imports.
import type { LayerOps } from './energy'
import { argError } from './errors'

export interface LinePoint {
  /** A number (quantitative axis) or a category such as a layer name (kept in data order). */
  x: number | string
  y: number
  series: string
}

/** What every chart has: titles, a log-scale switch and a size in pixels (default 560 x 300). */
export interface ChartFrame {
  title: string
  xTitle: string
  yTitle: string
  logY?: boolean
  width?: number
  height?: number
}

export interface LineChart extends ChartFrame {
  points: LinePoint[]
}

/** `items` of a chart, checked to be a non-empty array. */
function nonEmpty<T>(what: string, items: T[], expected: string): T[] {
  if (!Array.isArray(items) || items.length === 0) throw argError(what, `a non-empty array of ${expected}`, items)
  return items
}

/** The frame of a chart as a Vega-Lite spec: its title and size. */
function frame(chart: ChartFrame) {
  return { title: chart.title, width: chart.width ?? 560, height: chart.height ?? 300 }
}

/** A multi-series line chart as an SVG document. */
export async function lineChartSvg(chart: LineChart): Promise<string> {
  const points = nonEmpty('chart points', chart.points, '{ x, y, series }')
  const categorical = typeof points[0].x === 'string'
  const bad = points.find(
    (p) =>
      (categorical ? typeof p.x !== 'string' : !Number.isFinite(p.x)) ||
      !Number.isFinite(p.y) ||
      (chart.logY && p.y <= 0),
  )
  if (bad)
    throw argError(
      'chart point',
      `${categorical ? 'string' : 'finite'} x and ${chart.logY ? 'y > 0 (log scale)' : 'finite y'}`,
      bad,
    )
  return renderSvg({
    ...frame(chart),
    data: { values: points },
    mark: { type: 'line', point: true },
    encoding: {
      x: categorical
        ? { field: 'x', type: 'ordinal', title: chart.xTitle, sort: null, axis: { labelAngle: -40, labelLimit: 320 } }
        : { field: 'x', type: 'quantitative', title: chart.xTitle },
      y: {
        field: 'y',
        type: 'quantitative',
        title: chart.yTitle,
        scale: chart.logY ? { type: 'log' } : { zero: false },
      },
      color: { field: 'series', type: 'nominal', title: null, sort: null, legend: { labelLimit: 300 } },
    },
  })
}

/** Compiles a Vega-Lite spec and renders it headless to an SVG document. */
async function renderSvg(spec: object): Promise<string> {
  const vega = await import('vega')
  const vegaLite = await import('vega-lite')
  const compiled = vegaLite.compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    ...spec,
  } as never).spec
  const view = new vega.View(vega.parse(compiled), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}

export interface BarChart extends ChartFrame {
  /** One bar per (category, series); bars of a category stand side by side. */
  bars: { category: string; series: string; value: number }[]
}

/** A grouped bar chart as an SVG document. */
export async function barChartSvg(chart: BarChart): Promise<string> {
  const bars = nonEmpty('chart bars', chart.bars, '{ category, series, value }')
  const bad = bars.find(
    (b) => typeof b.category !== 'string' || !Number.isFinite(b.value) || b.value < 0 || (chart.logY && b.value <= 0),
  )
  if (bad)
    throw argError(
      'chart bar',
      chart.logY ? 'a category and a value > 0 (log scale)' : 'a category and a finite value >= 0',
      bad,
    )
  return renderSvg({
    ...frame(chart),
    data: { values: bars },
    mark: { type: 'bar' },
    encoding: {
      x: {
        field: 'category',
        type: 'nominal',
        title: chart.xTitle,
        sort: null,
        axis: { labelAngle: -40, labelLimit: 320 },
      },
      xOffset: { field: 'series', type: 'nominal', sort: null },
      y: { field: 'value', type: 'quantitative', title: chart.yTitle, scale: chart.logY ? { type: 'log' } : {} },
      color: { field: 'series', type: 'nominal', title: null, sort: null, legend: { labelLimit: 300 } },
    },
  })
}

/** The energy engineer's per-layer report (`energy.json` in a run folder): operation counts per
 * layer, AC (accumulate, spike inputs) and MAC (multiply-accumulate, real inputs). */
/** What the energy chart reads of an energy report (`Model.energy`, a run's energy.json). */
export interface EnergyChart {
  layers: readonly Pick<LayerOps, 'name' | 'ac' | 'mac'>[]
}

/** Synaptic operations per layer, AC beside MAC. */
export async function energyChartSvg(report: EnergyChart): Promise<string> {
  if (typeof report !== 'object' || report === null || !Array.isArray(report.layers) || report.layers.length === 0) {
    throw argError('energy report', 'an object { layers: [{ name, ac, mac }] } with at least one layer', report)
  }
  const bars = report.layers.flatMap((l, i) => {
    if (typeof l.name !== 'string' || !Number.isFinite(l.ac) || !Number.isFinite(l.mac)) {
      throw argError(`energy report layers[${i}]`, '{ name: string, ac: number, mac: number }', l)
    }
    return [
      { category: l.name, series: 'AC', value: l.ac },
      { category: l.name, series: 'MAC', value: l.mac },
    ]
  })
  return barChartSvg({ title: 'Synaptic operations per layer', xTitle: 'layer', yTitle: 'operations', bars })
}
