// dualstream energy: the per-layer operation and energy report. The energy counter lands in a
// parallel branch; until it is wired here the command says so instead of guessing numbers.
import { DualstreamError } from '../errors'
import { helped, parseCommand } from './args'
import type { OptionTable } from './args'

export const ENERGY_HELP = `Usage: dualstream energy <checkpoint.safetensors | RUN_DIR> [options]

The energy report: synaptic operations (AC for spike inputs, MAC for real ones) and energy per
layer. Not available yet in this build.

Options:
  -h, --help            this help
`

const OPTIONS: OptionTable = { help: { type: 'boolean', short: 'h' }, json: { type: 'boolean' }, dataset: { type: 'string' } }

export async function energy(argv: string[]): Promise<number> {
  const { values } = parseCommand('energy', argv, OPTIONS, 1)
  if (helped(values, ENERGY_HELP)) return 0
  throw new DualstreamError('ERR_NOT_IMPLEMENTED', 'energy: the energy report is not available yet in this build')
}
