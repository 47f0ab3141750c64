// Not part of the public API: helpers the CLI, the tests and the benchmarks share with the
// library (seeded randomness, the JSON the binding reads, atomic writes). They may change
// without notice.
export { writeFileAtomic } from './checkpoint'
export { frameSpecJson, toNativeEvents } from './data/frames'
export { pipelineJson } from './data/loader'
export { mnistTestCount } from './data/mnist'
export { deriveSeed, mix32, permutation, Rng, shuffleInPlace } from './data/random'
export { energyArgs } from './energy'
export { spreadBlocks } from './zoo'
