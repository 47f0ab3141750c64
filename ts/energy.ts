// Energy report of a model on a data set: synaptic operations split into accumulations (AC,
// spike inputs) and multiply-accumulates (MAC, anything else), firing rates, and
// E = E_AC * AC + E_MAC * MAC. The counting happens in the engine (crates/core/src/energy.rs,
// where the rules are written down); this file types the report and prints it.
import { argError } from './errors'

/** 45 nm energies per operation (Horowitz 2014): fp32 0.9 / 4.6 pJ (the paper's), fp16
 * 0.4 / 1.5 pJ, int8 0.03 / 0.23 pJ per AC / MAC. */
export type EnergyPreset = 'fp32' | 'fp16' | 'int8'
/** The preset names `Model.energy` and `dualstream energy --preset` accept. */
export const ENERGY_PRESETS: readonly EnergyPreset[] = ['fp32', 'fp16', 'int8']

/** Picojoules per accumulation and per multiply-accumulate. */
export interface Energies {
  acPj: number
  macPj: number
}

/** One synaptic layer (conv or linear), per sample, summed over the time steps. */
export interface LayerOps {
  name: string
  /** 'attention': one of spiking self-attention's two products (Q K^T, then its product with V). */
  kind: 'conv2d' | 'linear' | 'attention'
  /** Operations as if every input were non-zero: k_h*k_w*C_in/groups*C_out*H_out*W_out (+ bias). */
  denseOps: number
  /** Accumulations: weight ops x measured input firing rate (+ bias), for spike inputs. */
  ac: number
  /** AC if every input neuron fired at every step. */
  acWorst: number
  /** Multiply-accumulates: the dense ops of a non-spike input. */
  mac: number
  /** Mean input firing rate (null when the input was never binary). */
  inputRate: number | null
  /** Every input seen held only 0s and 1s. */
  spikeInput: boolean
  /** A non-spike input repeated at every step (a static image), computed and counted once. */
  staticInput: boolean
}

/** Mean output of a neuron layer (its firing rate) or of a block output. */
export interface RateReport {
  name: string
  /** Neurons (outputs) per sample and step. */
  units: number
  rate: number
  ratePerStep: number[]
}

export interface EnergyTotals {
  denseOps: number
  ac: number
  acWorst: number
  mac: number
  /** One per neuron per step; not priced. */
  neuronUpdates: number
  /** Dynamic Consumption: the energy with the measured firing rates, per sample. */
  dynamicMj: number
  /** The energy if every neuron fired at every step, per sample. */
  worstMj: number
}

/** What `Model.energy` returns: JSON-serialisable, everything per sample. */
export interface EnergyReport {
  mode: 'fsnn' | 'dsnn'
  /** Samples evaluated. */
  samples: number
  /** Accuracy on those samples in this mode. */
  accuracy: number
  energies: { name: EnergyPreset | 'custom' } & Energies
  layers: LayerOps[]
  neurons: RateReport[]
  blocks: RateReport[]
  totals: EnergyTotals
}

export interface EnergyOptions {
  /** Default 'fp32'. Ignored when `energies` is given. */
  preset?: EnergyPreset
  /** Custom picojoules per AC and MAC. */
  energies?: Energies
  /** Default 'fsnn' (the accumulation pathway removed); 'dsnn' keeps it. */
  mode?: 'fsnn' | 'dsnn'
  /** Default 64. */
  batchSize?: number
  /** Count on the first `maxSamples` samples only (default: all). */
  maxSamples?: number
}

/** Checks the options and returns the arguments of the native report call. */
export function energyArgs(options: EnergyOptions): { preset: EnergyPreset; acPj?: number; macPj?: number } {
  const preset = options.preset ?? 'fp32'
  if (!ENERGY_PRESETS.includes(preset)) throw argError('energy preset', `one of ${ENERGY_PRESETS.join(', ')}`, preset)
  const e = options.energies
  if (e === undefined) return { preset }
  if (
    typeof e !== 'object' ||
    e === null ||
    !Number.isFinite(e.acPj) ||
    !Number.isFinite(e.macPj) ||
    e.acPj < 0 ||
    e.macPj < 0
  ) {
    throw argError('energy energies', 'an object { acPj, macPj } of finite picojoules >= 0', e)
  }
  return { preset, acPj: e.acPj, macPj: e.macPj }
}

/** Operations with a unit prefix and 3 decimals, e.g. 118.014 M or 1.372 G. */
function ops(v: number): string {
  for (const [scale, unit] of [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ] as const)
    if (v >= scale) return `${(v / scale).toFixed(3)} ${unit}`
  return v.toFixed(1)
}
const mj = (v: number) => `${v.toPrecision(4)} mJ`
const pct = (v: number | null) => (v === null ? '-' : `${(100 * v).toFixed(2)} %`)

function table(rows: string[][], right: boolean[]): string {
  const widths = rows[0].map((_, c) => Math.max(...rows.map((r) => r[c].length)))
  return rows
    .map((r) =>
      r
        .map((cell, c) => (right[c] ? cell.padStart(widths[c]) : cell.padEnd(widths[c])))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

/**
 * The report as plain text: totals and energy first, then one row per synaptic layer and
 * the firing rates of neuron layers and blocks (overall and per time step).
 *
 * @example
 * ```ts
 * const report = await model.energy(test, { mode: 'fsnn' })
 * console.log(formatEnergyTable(report))
 * ```
 */
export function formatEnergyTable(report: EnergyReport): string {
  const t = report.totals
  const e = report.energies
  const lines = [
    `Energy (${report.mode}, ${report.samples} samples, accuracy ${(100 * report.accuracy).toFixed(2)} %), per sample:`,
    `  AC ${ops(t.ac)}   MAC ${ops(t.mac)}   dense ${ops(t.denseOps)}   neuron updates ${ops(t.neuronUpdates)}`,
    `  Dynamic Consumption ${mj(t.dynamicMj)}   worst case (rate 1) ${mj(t.worstMj)}` +
      `   [${e.name}: ${e.acPj} pJ/AC, ${e.macPj} pJ/MAC]`,
    '',
  ]
  const layerRows = [['layer', 'kind', 'input', 'rate', 'dense', 'AC', 'MAC']]
  for (const l of report.layers) {
    const input = l.spikeInput ? 'spikes' : l.staticInput ? 'static (once)' : 'non-spike'
    layerRows.push([l.name, l.kind, input, pct(l.inputRate), ops(l.denseOps), ops(l.ac), ops(l.mac)])
  }
  lines.push(table(layerRows, [false, false, false, true, true, true, true]), '')
  const rateRows = [['neurons / block output', 'units', 'rate', 'per time step']]
  for (const r of [...report.neurons, ...report.blocks]) {
    rateRows.push([r.name, String(r.units), pct(r.rate), r.ratePerStep.map((v) => (100 * v).toFixed(1)).join(' ')])
  }
  lines.push(table(rateRows, [false, true, true, false]))
  return lines.join('\n')
}
