// Public API of dualstream.
export * from './spec'
export * from './layers'
export * from './optim'
export * from './model'
export * from './energy'
export * from './zoo'
export * from './data'
export { DualstreamError } from './errors'
export {
  specToNir,
  nirToSpec,
  readNirGraph,
  writeNirGraph,
  LAYER_TO_NIR,
  DEFAULT_DT as NIR_DEFAULT_DT,
} from './interop/nir'
export type { NirWriteOptions, NirReadOptions, NirGraph, NirNode, ImportedModel } from './interop/nir'
export { ProgressDisplay } from './progress'
import native = require('./native')
/** Version of the Rust engine inside the loaded binary. */
export const engineVersion: () => string = native.engineVersion
export { encodeSafetensors, decodeSafetensors, readSafetensors, writeSafetensors, writeFileAtomic } from './checkpoint'
export type { NamedTensor, Safetensors } from './checkpoint'
export { RunFolder, plotRun } from './run'
export type { MetricsRow } from './run'
export { lineChartSvg, barChartSvg, energyChartSvg } from './plot'
export type { LineChart, LinePoint, BarChart, EnergyChart } from './plot'
