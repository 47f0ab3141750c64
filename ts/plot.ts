// Charts as SVG, rendered in Node without a browser: Vega-Lite specs compiled and rendered by
// Vega's headless view. Both packages are ESM-only, hence the dynamic imports.
import { argError } from './errors'

export interface LinePoint {
  x: number
  y: number
  series: string
}

export interface LineChart {
  title: string
  xTitle: string
  yTitle: string
  points: LinePoint[]
  logY?: boolean
  width?: number
  height?: number
}

/** A multi-series line chart as an SVG document. */
export async function lineChartSvg(chart: LineChart): Promise<string> {
  if (!Array.isArray(chart.points) || chart.points.length === 0) throw argError('chart points', 'a non-empty array of { x, y, series }', chart.points)
  const bad = chart.points.find((p) => !Number.isFinite(p.x) || !Number.isFinite(p.y) || (chart.logY && p.y <= 0))
  if (bad) throw argError('chart point', chart.logY ? 'finite x and y > 0 (log scale)' : 'finite x and y', bad)
  const vega = await import('vega')
  const vegaLite = await import('vega-lite')
  const spec = vegaLite.compile({
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: chart.title,
    width: chart.width ?? 560,
    height: chart.height ?? 300,
    data: { values: chart.points },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'x', type: 'quantitative', title: chart.xTitle },
      y: { field: 'y', type: 'quantitative', title: chart.yTitle, scale: chart.logY ? { type: 'log' } : { zero: false } },
      color: { field: 'series', type: 'nominal', title: null },
    },
  }).spec
  const view = new vega.View(vega.parse(spec), { renderer: 'none' })
  try {
    return await view.toSVG()
  } finally {
    view.finalize()
  }
}
