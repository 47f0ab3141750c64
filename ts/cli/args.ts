// Option parsing shared by the commands: strict flags, values checked with messages that say
// what is accepted. `where` names the value's source (`--epochs`, or `config.json key "epochs"`).
import { parseArgs } from 'node:util'
import { DualstreamError } from '../errors'

export type OptionTable = Record<string, { type: 'string' | 'boolean'; short?: string }>

/** A command's options: the flags that take a value, the switches, and `-h`/`--help`. */
export function optionTable(valued: readonly string[], switches: readonly string[] = ['json']): OptionTable {
  const table: OptionTable = {}
  for (const key of valued) table[key] = { type: 'string' }
  for (const key of switches) table[key] = { type: 'boolean' }
  table.help = { type: 'boolean', short: 'h' }
  return table
}

export function usage(message: string): DualstreamError {
  return new DualstreamError('ERR_ARG', message)
}

/** Parses `argv` strictly; an unknown flag is restated with the options the command accepts. */
export function parseCommand(command: string, argv: string[], options: OptionTable, positionals: number) {
  let parsed: ReturnType<typeof parseArgs>
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: positionals > 0, options })
  } catch (err) {
    const accepted = Object.keys(options)
      .map((k) => `--${k}`)
      .join(', ')
    throw usage(
      `${command}: ${(err as Error).message}. Accepted options: ${accepted} (see dualstream ${command} --help)`,
    )
  }
  if (parsed.positionals.length > positionals) {
    throw usage(
      `${command}: unexpected argument ${JSON.stringify(parsed.positionals[positionals])} (see dualstream ${command} --help)`,
    )
  }
  return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals }
}

export function int(where: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (value.trim() === '' || !Number.isInteger(n) || n < min)
    throw usage(`${where}: expected an integer >= ${min}, got ${JSON.stringify(value)}`)
  return n
}

/** The largest finite 32-bit float: the engine computes in f32. */
const F32_MAX = 3.4028234663852886e38

export function positive(where: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const x = Number(value)
  if (value.trim() === '' || !Number.isFinite(x) || x <= 0 || x > F32_MAX)
    throw usage(
      `${where}: expected a number > 0 that fits a 32-bit float (at most 3.4e38), got ${JSON.stringify(value)}`,
    )
  return x
}

/** A finite number >= 0 that fits a 32-bit float (0 allowed: a weight decay of none). */
export function nonNegative(where: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const x = Number(value)
  if (value.trim() === '' || !Number.isFinite(x) || x < 0 || x > F32_MAX)
    throw usage(
      `${where}: expected a number >= 0 that fits a 32-bit float (at most 3.4e38), got ${JSON.stringify(value)}`,
    )
  return x
}

export function oneOf<T extends string>(
  where: string,
  value: string | undefined,
  choices: readonly T[],
  fallback: T,
): T {
  if (value === undefined) return fallback
  if (!(choices as readonly string[]).includes(value)) {
    throw usage(`${where}: expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`)
  }
  return value as T
}

/**
 * `--mode` of a command that runs a model: `fsnn`, `dsnn` or `both` (the default for a
 * dual-stream model, else `fsnn`); `singleStream` says which model is single-stream when one is
 * asked for its DSNN stream.
 */
export function inferenceModes(value: string | undefined, dual: boolean, singleStream: string): ('fsnn' | 'dsnn')[] {
  const mode = oneOf('--mode', value, ['fsnn', 'dsnn', 'both'] as const, dual ? 'both' : 'fsnn')
  if (mode !== 'fsnn' && !dual)
    throw usage(`--mode: ${mode} needs a dual-stream model (with its AAP); ${singleStream}: use --mode fsnn`)
  return mode === 'both' ? ['fsnn', 'dsnn'] : [mode]
}

/** A help flag anywhere prints `help` and stops the command. */
export function helped(values: Record<string, unknown>, help: string): boolean {
  if (!values.help) return false
  process.stdout.write(help)
  return true
}
