// Public API of dualstream.

export * from './data'
export * from './energy'
export { DualstreamError } from './errors'
export * from './layers'
export * from './model'
export * from './optim'
export { ProgressDisplay } from './progress'
export * from './spec'
export * from './zoo'

import native = require('./native')
/** Version of the Rust engine inside the loaded binary. */
export const engineVersion: () => string = native.engineVersion
export type { NamedTensor, Safetensors } from './checkpoint'
export { decodeSafetensors, encodeSafetensors, readSafetensors, writeFileAtomic, writeSafetensors } from './checkpoint'
export type { BarChart, EnergyChart, LineChart, LinePoint } from './plot'
export { barChartSvg, energyChartSvg, lineChartSvg } from './plot'
export type { MetricsRow } from './run'
export { plotRun, RunFolder } from './run'
