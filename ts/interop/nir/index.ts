// NIR (Neuromorphic Intermediate Representation) export and import. See docs/deployment.md.
export { specToNir, type NirWriteOptions } from './write'
export { nirToSpec, type NirReadOptions, type ImportedModel } from './read'
export { readNirGraph, writeNirGraph, NIR_VERSION, type NirGraph, type NirNode } from './graph'
export { DEFAULT_DT, LAYER_TO_NIR } from './primitives'
