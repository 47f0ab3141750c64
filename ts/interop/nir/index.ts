// NIR (Neuromorphic Intermediate Representation) export and import. See docs/deployment.md.

export { NIR_VERSION, type NirGraph, type NirNode, readNirGraph, writeNirGraph } from './graph'
export { DEFAULT_DT, LAYER_TO_NIR } from './primitives'
export { type ImportedModel, type NirReadOptions, nirToSpec } from './read'
export { type NirWriteOptions, specToNir } from './write'
