#!/usr/bin/env node
// `dualstream` command line: a thin layer over the TypeScript API (fit, save/load, evaluate,
// toFullSpike, plots), one file per command in ts/cli/.
import { ENERGY_HELP, energy } from './cli/energy'
import { EVALUATE_HELP, evaluate } from './cli/evaluate'
import { EXPORT_HELP, exportModel } from './cli/export'
import { IMPORT_HELP, importModel } from './cli/import'
import { INFO_HELP, info } from './cli/info'
import { PLOT_HELP, plot } from './cli/plot'
import { TRAIN_HELP, train } from './cli/train'
import { DualstreamError } from './errors'

interface Command {
  summary: string
  help: string
  run: (argv: string[]) => Promise<number>
}

const COMMANDS: Record<string, Command> = {
  train: {
    summary: 'train an SNN (default: the DSNN on Fashion-MNIST) into a run folder; --resume continues one',
    help: TRAIN_HELP,
    run: train,
  },
  evaluate: {
    summary: 'accuracy of a checkpoint or run, as the full-spike network and/or the DSNN',
    help: EVALUATE_HELP,
    run: evaluate,
  },
  export: {
    summary: 'write the deployable full-spike model of a checkpoint (AAP removed), or its NIR graph',
    help: EXPORT_HELP,
    run: exportModel,
  },
  import: {
    summary: 'a model from another format (NIR) as a dualstream checkpoint',
    help: IMPORT_HELP,
    run: importModel,
  },
  info: {
    summary: "a model's layers, output shapes, parameter count and memory per time step",
    help: INFO_HELP,
    run: info,
  },
  plot: {
    summary: "render a run folder's charts (loss, accuracy, firing rates, gradient norms, energy) as SVG",
    help: PLOT_HELP,
    run: plot,
  },
  energy: {
    summary: 'synaptic operations (AC vs MAC), firing rates and energy per layer on a test set',
    help: ENERGY_HELP,
    run: energy,
  },
}

const HELP = `Usage: dualstream <command> [options]

Commands:
${Object.entries(COMMANDS)
  .map(([name, c]) => `  ${name.padEnd(9)} ${c.summary}`)
  .join('\n')}

Run 'dualstream <command> --help' for a command's options.
`

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    if (command === 'help' && rest[0] && COMMANDS[rest[0]]) process.stdout.write(COMMANDS[rest[0]].help)
    else process.stdout.write(HELP)
    return 0
  }
  const c = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined
  if (!c)
    throw new DualstreamError(
      'ERR_ARG',
      `unknown command ${JSON.stringify(command)}; expected one of: ${Object.keys(COMMANDS).join(', ')} (see dualstream --help)`,
    )
  return c.run(rest)
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    const message = err instanceof Error ? err.message : String(err)
    process.stderr.write(`dualstream: ${message}\n`)
    process.exitCode = 2
  },
)
