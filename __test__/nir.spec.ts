// NIR export and import: the files other tools read, the frameworks that run them, the
// reference interpreter for the spike joins, the frameworks' own files imported, round trips.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import type { DualConnect, LayerSpec } from '../ts/index'
import {
  avgPool2d,
  batchNorm2d,
  conv2d,
  convDsnn,
  DualstreamError,
  dsnn7b,
  dualBasicBlock,
  dualStream,
  flatten,
  ifNode,
  lif,
  linear,
  Model,
  maxPool2d,
  plif,
  relu,
  sewBlock,
  smallDsnn,
  spikingResnetBlock,
} from '../ts/index'
import { readCheckpoint } from '../ts/model'
import { pythonTest, runPython } from './python'

const dir = mkdtempSync(join(tmpdir(), 'dualstream-nir-'))
const SIMULATE = join(__dirname, '..', 'scripts', 'nir', 'simulate.py')
const NIRTORCH = join(__dirname, '..', 'scripts', 'nir', 'nirtorch_sim.py')

/** Deterministic inputs in [0, scale). */
function inputs(n: number, size: number, seed: number, scale: number): Float32Array {
  let s = seed >>> 0
  return Float32Array.from({ length: n * size }, () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return (s / 2 ** 32) * scale
  })
}

/**
 * The model's output at every step, [N][T][K]: the model run for t = 1..T steps (same weights)
 * gives time means m_t, and step t's output is t*m_t - (t-1)*m_{t-1}.
 */
async function perStep(
  model: Model,
  x: Float32Array,
  n: number,
  mode: 'fsnn' | 'dsnn' = 'fsnn',
): Promise<number[][][]> {
  const file = join(dir, `per-step-${Math.random().toString(36).slice(2)}.safetensors`)
  await model.save(file)
  const ck = readCheckpoint(file)
  const T = ck.spec.timeSteps
  const out: number[][][] = Array.from({ length: n }, () => [])
  let prev: Float32Array | undefined
  for (let t = 1; t <= T; t++) {
    const m = Model.fromCheckpoint({ ...ck, spec: { ...ck.spec, timeSteps: t } })
    const mean = await m.predict(x, n, mode)
    await m.dispose()
    const k = mean.length / n
    for (let i = 0; i < n; i++) {
      out[i].push(Array.from({ length: k }, (_, j) => t * mean[i * k + j] - (prev ? (t - 1) * prev[i * k + j] : 0)))
    }
    prev = mean
  }
  return out
}

interface Simulated {
  outputs: number[][][]
  margins: number[] | null
}

function simulate(
  file: string,
  x: Float32Array,
  n: number,
  T: number,
  shape: number[],
  framework: string,
  dt = 1e-4,
): Simulated {
  const xfile = join(dir, `x-${Math.random().toString(36).slice(2)}.f32`)
  writeFileSync(xfile, x)
  const [c, h, w] = shape
  const out = runPython(SIMULATE, [
    file,
    xfile,
    String(n),
    String(T),
    String(c),
    String(h),
    String(w),
    '--with',
    framework,
    '--dt',
    String(dt),
  ])
  return JSON.parse(out.slice(out.indexOf('{"outputs"'))) as Simulated
}

/** The per-step outputs [N][T][K] of the file run by nirtorch's graph executor (nirtorch_sim.py). */
function nirtorch(file: string, x: Float32Array, n: number, T: number, shape: number[], dt = 1e-4): number[][][] {
  const xfile = join(dir, `x-${Math.random().toString(36).slice(2)}.f32`)
  writeFileSync(xfile, x)
  const args = [file, xfile, String(n), String(T), ...shape.map(String), '--dt', String(dt), '--batch', '7']
  const out = runPython(NIRTORCH, args)
  return (JSON.parse(out.slice(out.indexOf('{"outputs"'))) as { outputs: number[][][] }).outputs
}

/**
 * The first `n` samples (of x's candidates) that no neuron decides within 1e-4 of its threshold
 * (float32 and float64 engines differ by about 1e-6 here, so no spike can flip).
 */
function marginGuarded(
  file: string,
  x: Float32Array,
  candidates: number,
  n: number,
  T: number,
  shape: number[],
): Float32Array {
  const size = shape.reduce((a, b) => a * b, 1)
  const { margins } = simulate(file, x, candidates, T, shape, 'numpy')
  const keep = margins!
    .map((m, i) => [m, i])
    .filter(([m]) => m > 1e-4)
    .map(([, i]) => i)
    .slice(0, n)
  if (keep.length < n) throw new Error(`only ${keep.length} of ${candidates} candidates keep a 1e-4 margin`)
  const out = new Float32Array(n * size)
  keep.forEach((i, j) => {
    out.set(x.subarray(i * size, (i + 1) * size), j * size)
  })
  return out
}

const spikes = (y: number[][][]) => y.map((s) => s.map((step) => step.map((v) => Math.round(v) + 0)))

// --- the subset SpikingJelly and snnTorch import -----------------------------------------------

// conv-BN-LIF-avgpool-flatten-linear-LIF, LIFs without input decay (what snnTorch's Leaky is).
const lifChain = (): LayerSpec[] => [
  conv2d(1, 4, 3, { padding: 1 }),
  batchNorm2d(4),
  lif({ tau: 2, decayInput: false }),
  avgPool2d(2),
  flatten(),
  linear(64, 5),
  lif({ tau: 2, decayInput: false, vThreshold: 0.25 }),
]

pythonTest(
  'SpikingJelly and snnTorch run the exported conv-LIF-avgpool-flatten-linear-LIF and spike as dualstream does on 100 inputs',
  async (t) => {
    const model = new Model(lifChain(), { timeSteps: 6, inputShape: [1, 8, 8], seed: 3 })
    const file = join(dir, 'lif-chain.nir')
    await model.toNir(file)
    const x = marginGuarded(file, inputs(300, 64, 11, 3), 300, 100, 6, [1, 8, 8])
    const ours = spikes(await perStep(model, x, 100))
    const total = ours.flat(2).reduce((a, b) => a + b, 0)
    t.true(total > 100, `the output layer spikes (${total} spikes)`)
    t.true(ours.flat(2).every((v) => v === 0 || v === 1))
    for (const framework of ['spikingjelly', 'snntorch']) {
      const theirs = simulate(file, x, 100, 6, [1, 8, 8], framework).outputs
      t.deepEqual(theirs, ours, `${framework}'s spikes`)
    }
    t.deepEqual(nirtorch(file, x, 100, 6, [1, 8, 8]), ours, "nirtorch's spikes")
  },
)

pythonTest(
  'SpikingJelly runs an exported IF/LIF(decayInput) network and spikes as dualstream does on 100 inputs',
  async (t) => {
    const layers = [
      conv2d(1, 4, 3, { padding: 1 }),
      ifNode(),
      avgPool2d(2),
      conv2d(4, 4, 3, { padding: 1 }),
      lif({ tau: 2 }),
      flatten(),
      linear(64, 5),
      ifNode({ vThreshold: 0.5 }),
    ]
    const model = new Model(layers, { timeSteps: 5, inputShape: [1, 8, 8], seed: 5 })
    const file = join(dir, 'if-chain.nir')
    await model.toNir(file)
    const x = marginGuarded(file, inputs(160, 64, 17, 3), 160, 100, 5, [1, 8, 8])
    const ours = spikes(await perStep(model, x, 100))
    t.true(ours.flat(2).reduce((a, b) => a + b, 0) > 50)
    t.deepEqual(simulate(file, x, 100, 5, [1, 8, 8], 'spikingjelly').outputs, ours)
  },
)

// --- joins: the numpy interpreter of the NIR spec --------------------------------------------

function joinNet(connect: DualConnect, residualNeuron?: { vThreshold: number }): LayerSpec[] {
  // Low thresholds: with default initial weights deeper layers would barely spike (AND needs
  // both inputs to spike at once).
  const neuron = () => lif({ tau: 2, vThreshold: connect === 'and' ? 0.05 : 0.3 })
  return [
    conv2d(1, 4, 3, { padding: 1, bias: false }),
    batchNorm2d(4),
    neuron(),
    dualStream({
      stages: [
        dualBasicBlock(4, 4, { connect, neuron, zeroInit: false, residualNeuron }),
        maxPool2d(2),
        dualBasicBlock(4, 8, { connect, neuron, zeroInit: false, stride: 2, residualNeuron }),
      ],
      classes: 3,
    }),
  ]
}

const joinCases: [string, () => LayerSpec[]][] = [
  ...(['and', 'or', 'iand', 'xor'] as DualConnect[]).map(
    (c) => [`dual-stream ${c}`, () => joinNet(c)] as [string, () => LayerSpec[]],
  ),
  // A residual threshold off the integers: with V_th 1 a locally silent branch gives SN_res
  // exactly 0 + 1, a tie both engines resolve the same way but that the margin check counts.
  ['dual-stream spikingResnet', () => joinNet('spikingResnet', { vThreshold: 0.75 })],
  [
    'SEW add and Spiking ResNet blocks, PLIF',
    () => [
      conv2d(1, 4, 3, { padding: 1 }),
      plif({ tau: 2 }),
      sewBlock({ branch: [conv2d(4, 4, 3, { padding: 1 }), batchNorm2d(4), plif()], connect: 'add' }),
      spikingResnetBlock({ branch: [conv2d(4, 4, 3, { padding: 1 }), batchNorm2d(4)] }),
      avgPool2d(2),
      flatten(),
      linear(64, 3),
    ],
  ],
]

/** A join case exported as NIR, 20 margin-guarded inputs of 4 steps, and dualstream's logits per step. */
async function exportJoinCase(prefix: string, name: string, build: () => LayerSpec[]) {
  const model = new Model(build(), { timeSteps: 4, inputShape: [1, 8, 8], seed: 7 })
  const file = join(dir, `${prefix}-${name.replace(/\W+/g, '-')}.nir`)
  await model.toNir(file)
  const x = marginGuarded(file, inputs(80, 64, 23, 4), 80, 20, 4, [1, 8, 8])
  return { file, x, ours: await perStep(model, x, 20) }
}

for (const [name, build] of joinCases) {
  pythonTest(`the numpy NIR interpreter reproduces dualstream's logits at every step: ${name}`, async (t) => {
    const { file, x, ours } = await exportJoinCase('join', name, build)
    const theirs = simulate(file, x, 20, 4, [1, 8, 8], 'numpy').outputs
    let worst = 0
    ours.flat(2).forEach((v, i) => {
      worst = Math.max(worst, Math.abs(v - theirs.flat(2)[i]))
    })
    t.true(worst < 1e-4, `largest logit difference ${worst}`)
    // Not a silent network: the logits move with the input.
    const distinct = new Set(theirs.flat(2).map((v) => v.toFixed(4))).size
    t.true(distinct > 10, `${distinct} distinct logits`)
  })
}

// The same join networks run by an outside framework: nirtorch's graph executor (it sums the
// edges into a node and threads the neurons' state through the steps) with SpikingJelly's
// layers and neurons, and torch Threshold/Scale modules for the joins.
for (const [name, build] of joinCases) {
  pythonTest(`nirtorch with SpikingJelly modules reproduces dualstream's logits at every step: ${name}`, async (t) => {
    const { file, x, ours } = await exportJoinCase('nirtorch', name, build)
    const theirs = nirtorch(file, x, 20, 4, [1, 8, 8]).flat(2)
    t.is(theirs.length, ours.flat(2).length)
    const worst = Math.max(...ours.flat(2).map((v, i) => Math.abs(v - theirs[i])))
    t.true(worst < 1e-4, `largest logit difference ${worst}`)
    const distinct = new Set(theirs.map((v) => v.toFixed(4))).size
    t.true(distinct > 10, `${distinct} distinct logits`)
  })
}

pythonTest('exported files load with nir.read and pass its type check', async (t) => {
  const file = join(dir, 'check.nir')
  const m = new Model(convDsnn({ width: 4 }), { timeSteps: 2, inputShape: [1, 28, 28] })
  await m.toNir(file)
  const out = runPython(join(__dirname, '..', 'scripts', 'nir', 'check.py'), [file])
  const report = JSON.parse(out) as { version: string; types: Record<string, number> }
  t.is(report.version, '1.0.8')
  t.true(report.types.Threshold >= 4)
  t.is(report.types.Conv2d, 5)
})

// --- the frameworks' own files, without Python -------------------------------------------------

for (const name of ['spikingjelly', 'snntorch', 'norse']) {
  test(`a NIR file written by ${name} imports and reproduces its outputs`, async (t) => {
    const base = join(__dirname, 'fixtures', 'nir', name)
    const f = JSON.parse(readFileSync(`${base}.json`, 'utf8')) as {
      dt: number
      timeSteps: number
      inputs: number[][]
      outputs: number[][][]
    }
    const model = await Model.fromNir(`${base}.nir`, { dt: f.dt, timeSteps: f.timeSteps })
    const x = Float32Array.from(f.inputs.flat())
    const ours = spikes(await perStep(model, x, f.inputs.length))
    t.deepEqual(ours, f.outputs)
  })
}

// --- round trips -------------------------------------------------------------------------------

const zoo: [
  string,
  () => { layers: LayerSpec[]; timeSteps: number; inputShape: number[]; encoding?: 'direct' | 'sequence' },
][] = [
  [
    'convDsnn (max pooling of spikes)',
    () => ({ layers: convDsnn({ width: 4 }), timeSteps: 3, inputShape: [1, 28, 28] }),
  ],
  ['convDsnn pool avg', () => ({ layers: convDsnn({ width: 4, pool: 'avg' }), timeSteps: 3, inputShape: [1, 28, 28] })],
  [
    'dsnn7b pool strided',
    () => ({ ...dsnn7b({ blocks: 2, inputShape: [2, 16, 16], timeSteps: 3, pool: 'strided', zeroInit: false }) }),
  ],
  ['dsnn7b', () => ({ ...dsnn7b({ blocks: 2, inputShape: [2, 16, 16], timeSteps: 3, zeroInit: false }) })],
  [
    'smallDsnn',
    () => ({ ...smallDsnn({ inputShape: [1, 8, 8], classes: 3, widths: [4, 8], blocks: [1, 1], zeroInit: false }) }),
  ],
]

for (const [name, build] of zoo) {
  test(`dualstream -> NIR -> dualstream gives identical outputs: ${name}`, async (t) => {
    const net = build()
    const model = new Model(net.layers, {
      timeSteps: net.timeSteps,
      inputShape: net.inputShape,
      encoding: net.encoding,
      seed: 2,
    })
    const file = join(dir, `round-${name.replace(/\W+/g, '-')}.nir`)
    await model.toNir(file)
    const back = await Model.fromNir(file)
    const size = net.inputShape.reduce((a, b) => a * b, 1)
    const n = 4
    const seq = net.encoding === 'sequence'
    const x = inputs(n * size * (seq ? net.timeSteps : 1), 1, 31, 2)
    const fsnn = net.layers.some((l) => l.type === 'dualStream') ? await model.toFullSpike() : model
    const folded = await fsnn.foldBatchNorm()
    const want = await folded.predict(x, n)
    t.deepEqual(await back.predict(x, n), want, 'bit-identical to the exported (folded) FSNN')
    const original = await model.predict(x, n, 'fsnn')
    original.forEach((v, i) => {
      t.true(Math.abs(v - want[i]) < 1e-4, `fsnn output ${i}: ${v} vs ${want[i]}`)
    })
    t.true(new Set(Array.from(want, (v) => v.toFixed(5))).size > 1, 'the outputs are not constant')
  })
}

// --- refusals ------------------------------------------------------------------------------------

test('what NIR cannot express is refused with ERR_SPEC naming the layer', async (t) => {
  const cases: [LayerSpec[], RegExp][] = [
    [
      [conv2d(1, 2, 3), maxPool2d(2), lif(), flatten(), linear(2 * 3 * 3, 2)],
      /layers\.1 \(maxPool2d\).*max pooling of non-spike.*avgPool2d/,
    ],
    [
      [conv2d(1, 2, 3), lif({ vReset: null }), flatten(), linear(2 * 6 * 6, 2)],
      /layers\.1 \(lif\).*soft reset.*vReset: 0/,
    ],
    [[conv2d(1, 2, 3), relu(), flatten(), linear(2 * 6 * 6, 2)], /layers\.1 \(relu\)/],
    [
      [conv2d(1, 2, 3), lif(), avgPool2d(2, { padding: 1 }), flatten(), linear(2 * 4 * 4, 2)],
      /layers\.2 \(avgPool2d\).*padding/,
    ],
    [
      [conv2d(1, 2, 3), lif(), maxPool2d(4, { ceilMode: true }), flatten(), linear(2 * 2 * 2, 2)],
      /layers\.2 \(maxPool2d\).*ceil-mode pooling with a partial last window \(on 6x6\).*ceilMode: false/,
    ],
  ]
  for (const [layers, message] of cases) {
    const m = new Model(layers, { timeSteps: 2, inputShape: [1, 8, 8] })
    const err = await t.throwsAsync(m.toNir(join(dir, 'refused.nir')))
    t.true(err instanceof DualstreamError)
    t.is((err as DualstreamError).code, 'ERR_SPEC')
    t.regex(err!.message, message)
  }
})

test('a NIR node dualstream cannot import is refused by name', async (t) => {
  const file = join(__dirname, 'fixtures', 'nir', 'spikingjelly.nir')
  const err = await t.throwsAsync(Model.fromNir(file, { dt: 1e-3 }))
  t.is((err as DualstreamError).code, 'ERR_SPEC')
  t.regex(err!.message, /IF.*r = .*1\/dt/)
})

// --- the command line ----------------------------------------------------------------------------

test('dualstream export --format nir and dualstream import round-trip a checkpoint', async (t) => {
  const cli = join(__dirname, '..', 'dist', 'cli.js')
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 })
  const model = new Model(convDsnn({ width: 4 }), { timeSteps: 3, inputShape: [1, 28, 28], seed: 4 })
  const checkpoint = join(dir, 'cli.safetensors')
  await model.save(checkpoint)
  const nir = join(dir, 'cli.nir')
  let r = run('export', checkpoint, '--format', 'nir', '--out', nir, '--json')
  t.is(r.status, 0, r.stderr)
  t.like(JSON.parse(r.stdout), { format: 'nir', dt: 1e-4, out: nir })
  const back = join(dir, 'cli-back.safetensors')
  r = run('import', nir, '--out', back, '--json')
  t.is(r.status, 0, r.stderr)
  const imported = await Model.load(back)
  const x = inputs(3 * 784, 1, 41, 2)
  const folded = await (await model.toFullSpike()).foldBatchNorm()
  t.deepEqual(await imported.predict(x, 3), await folded.predict(x, 3))
  // Without --format, an --out ending in .nir selects NIR; the file is HDF5, not safetensors.
  const byExtension = join(dir, 'cli-ext.nir')
  r = run('export', checkpoint, '--out', byExtension, '--json')
  t.is(r.status, 0, r.stderr)
  t.like(JSON.parse(r.stdout), { format: 'nir', out: byExtension })
  t.deepEqual([...readFileSync(byExtension).subarray(0, 8)], [0x89, 0x48, 0x44, 0x46, 0x0d, 0x0a, 0x1a, 0x0a])
  r = run('export', checkpoint, '--format', 'onnx', '--out', nir)
  t.is(r.status, 2)
  t.regex(r.stderr, /--format: expected one of safetensors, nir/)
})
