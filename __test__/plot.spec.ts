import test from 'ava'
import { lineChartSvg } from '../ts/plot'

test('line charts render to SVG with the title, axis titles and every series', async (t) => {
  const svg = await lineChartSvg({
    title: 'Gradient norm per block',
    xTitle: 'block',
    yTitle: '|dL/dO|',
    logY: true,
    points: [0, 1, 2].flatMap((x) => [
      { x, y: 10 ** -x, series: 'plain' },
      { x, y: 1, series: 'DSNN' },
    ]),
  })
  t.true(svg.startsWith('<svg'))
  t.true(svg.trimEnd().endsWith('</svg>'))
  for (const text of ['Gradient norm per block', 'block', '|dL/dO|', 'plain', 'DSNN']) t.true(svg.includes(text), text)
  // One line mark per series.
  t.is((svg.match(/class="mark-line role-mark/g) ?? []).length, 2)
})

test('bad chart data is refused with what was expected', async (t) => {
  await t.throwsAsync(lineChartSvg({ title: '', xTitle: '', yTitle: '', points: [] }), { message: /non-empty array/ })
  await t.throwsAsync(
    lineChartSvg({ title: '', xTitle: '', yTitle: '', logY: true, points: [{ x: 0, y: 0, series: 'a' }] }),
    { message: /y > 0/ },
  )
})

import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join } from 'node:path'
import { energyChartSvg } from '../ts/plot'
import type { MetricsRow } from '../ts/run'
import { plotRun } from '../ts/run'
import { marks, parseXml, texts } from './svg'

test('the SVG parser used below rejects malformed documents', (t) => {
  t.throws(() => parseXml('<svg><g></svg>'), { message: /closes <g>/ })
  t.throws(() => parseXml('<svg a=1></svg>'), { message: /stray|never closed|root/ })
  t.throws(() => parseXml('<svg><text>a & b</text></svg>'), { message: /bad entity/ })
  t.is(parseXml('<svg x="1"><text>a &amp; b</text></svg>').children[0].text, 'a & b')
})

test('the energy chart draws AC and MAC bars for every layer of a report', async (t) => {
  const report = {
    layers: [
      { name: 'layers.0 (conv2d)', ac: 0, mac: 2.0e6, energyPj: 9.2e6 },
      { name: 'layers.4 (linear)', ac: 3.1e5, mac: 0 },
      { name: 'layers.5 head', ac: 1.2e4, mac: 0 },
    ],
  }
  const svg = parseXml(await energyChartSvg(report))
  t.is(svg.name, 'svg')
  const words = texts(svg)
  for (const w of [
    'Synaptic operations per layer',
    'layers.0 (conv2d)',
    'layers.4 (linear)',
    'layers.5 head',
    'AC',
    'MAC',
  ])
    t.true(words.includes(w), w)
  const [bars] = marks(svg, 'rect')
  t.is(bars.children.length, 6, 'one bar per layer and kind')
  await t.throwsAsync(energyChartSvg({ layers: [{ name: 'x', ac: 1 } as never] }), {
    message: /layers\[0\]: expected \{ name: string, ac: number, mac: number \}/,
  })
})

function row(epoch: number): MetricsRow {
  return {
    epoch,
    step: 10 * epoch,
    trainLoss: 2 / epoch,
    trainAccuracy: 0.5 + 0.1 * epoch,
    firingRate: 0.1,
    learningRate: 0.01,
    testLoss: 2.2 / epoch,
    testAccuracy: 0.45 + 0.1 * epoch,
    dsnnTestAccuracy: 0.47 + 0.1 * epoch,
    samplesPerSecond: 900,
    seconds: 3,
    firingRates: [
      { name: 'layers.2 (lif)', rate: 0.1 * epoch },
      { name: 'layers.4.stages.0.out', rate: 0.05 },
    ],
    gradientNorms: [
      { name: 'layers.4.stages.0.O', norm: 0.01 * epoch },
      { name: 'layers.4.stages.0.A', norm: 0.02 },
      { name: 'layers.4.stages.1.O', norm: 0 },
    ],
  }
}

test('plotRun renders every chart of a run folder with the expected series', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dualstream-plot-'))
  writeFileSync(join(dir, 'metrics.jsonl'), [1, 2, 3].map((e) => `${JSON.stringify(row(e))}\n`).join(''))
  writeFileSync(
    join(dir, 'energy.json'),
    JSON.stringify({
      layers: [
        { name: 'stem', ac: 0, mac: 10 },
        { name: 'head', ac: 5, mac: 0 },
      ],
    }),
  )
  const files = await plotRun(dir)
  t.deepEqual(
    files.map((f) => basename(f)),
    ['loss.svg', 'accuracy.svg', 'firing-rates.svg', 'gradient-norms.svg', 'energy.svg'],
  )
  const svg = (name: string) => parseXml(readFileSync(join(dir, 'plots', name), 'utf8'))
  const expectSeries = (name: string, series: string[], labels: string[] = []) => {
    const doc = svg(name)
    const words = texts(doc)
    for (const w of [...series, ...labels]) t.true(words.includes(w), `${name}: ${w}`)
    t.is(marks(doc, 'line').length, series.length, `${name}: one line per series`)
  }
  expectSeries('loss.svg', ['train', 'test'], ['epoch', 'cross-entropy'])
  expectSeries('accuracy.svg', ['train', 'test (full-spike)', 'test (DSNN, AAP kept)'])
  expectSeries('firing-rates.svg', ['epoch 1', 'epoch 2', 'epoch 3'], ['layers.2 (lif)', 'layers.4.stages.0.out'])
  // The zero norm cannot sit on a log axis and is left out; the other outputs are labelled.
  const norms = svg('gradient-norms.svg')
  t.true(texts(norms).includes('layers.4.stages.0.A'))
  t.false(texts(norms).includes('layers.4.stages.1.O'))
  t.is(marks(norms, 'line').length, 3)
  t.is(marks(svg('energy.svg'), 'rect')[0].children.length, 4)
})

test('plotRun refuses a folder that is not a run', async (t) => {
  await t.throwsAsync(plotRun(mkdtempSync(join(tmpdir(), 'dualstream-plot-'))), {
    code: 'ERR_NOT_FOUND',
    message: /not a run folder: no metrics\.jsonl/,
  } as never)
})
