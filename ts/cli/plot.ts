// dualstream plot: a run folder's charts.
import { plotRun } from '../run'
import { helped, optionTable, parseCommand, usage } from './args'
import { out } from './common'

export const PLOT_HELP = `Usage: dualstream plot RUN_DIR

Renders a run folder's charts as SVG into RUN_DIR/plots (also done at the end of every run):
loss.svg and accuracy.svg (train and test per epoch), firing-rates.svg (firing rate of every
neuron layer on the test set, the paper's Figure 5), gradient-norms.svg (gradient norm at each
dual-stream block output, Figure 7; dual-stream models), energy.svg (operations per layer, when
RUN_DIR/energy.json holds an energy report { layers: [{ name, ac, mac }] }).

Options:
  -h, --help            this help
`

const OPTIONS = optionTable([], [])

export async function plot(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('plot', argv, OPTIONS, 1)
  if (helped(values, PLOT_HELP)) return 0
  if (positionals.length === 0) throw usage('plot: expected a run folder (see dualstream plot --help)')
  for (const file of await plotRun(positionals[0])) out(file)
  return 0
}
