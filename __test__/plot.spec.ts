import test from 'ava'
import { lineChartSvg } from '../ts/plot'

test('line charts render to SVG with the title, axis titles and every series', async (t) => {
  const svg = await lineChartSvg({
    title: 'Gradient norm per block', xTitle: 'block', yTitle: '|dL/dO|', logY: true,
    points: [0, 1, 2].flatMap((x) => [{ x, y: 10 ** -x, series: 'plain' }, { x, y: 1, series: 'DSNN' }]),
  })
  t.true(svg.startsWith('<svg'))
  t.true(svg.trimEnd().endsWith('</svg>'))
  for (const text of ['Gradient norm per block', 'block', '|dL/dO|', 'plain', 'DSNN']) t.true(svg.includes(text), text)
  // One line mark per series.
  t.is((svg.match(/class="mark-line role-mark/g) ?? []).length, 2)
})

test('bad chart data is refused with what was expected', async (t) => {
  await t.throwsAsync(lineChartSvg({ title: '', xTitle: '', yTitle: '', points: [] }), { message: /non-empty array/ })
  await t.throwsAsync(lineChartSvg({ title: '', xTitle: '', yTitle: '', logY: true, points: [{ x: 0, y: 0, series: 'a' }] }), { message: /y > 0/ })
})
