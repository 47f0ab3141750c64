// PyTorch/SpikingJelly interop: the exported program computes what dualstream computes, and
// state_dicts from PyTorch come back. Python runs the other side (scripts/python/).
import { execFileSync, spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import {
  avgPool2d,
  batchNorm2d,
  type Checkpoint,
  conv2d,
  flatten,
  ifNode,
  type LayerSpec,
  lif,
  linear,
  loadFashionMnist,
  losses,
  Model,
  type ModelSpec,
  maxPool2d,
  type NamedTensor,
  plif,
  readSafetensors,
  schedules,
  sewBasicBlock,
  sewBlock,
  sgd,
  spikformer,
  surrogate,
  TensorDataset,
  writeSafetensors,
} from '../ts'
import { toTorchTensors } from '../ts/interop/pytorch'
import * as zoo from '../ts/zoo'
import { python, pythonTest, runPython } from './python'

const SCRIPTS = join(__dirname, '..', 'scripts', 'python')
const TOL = 1e-4

/** A deterministic generator of uniform floats in [0, 1). */
function uniform(seed: number): () => number {
  let s = seed >>> 0
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0
    return s / 2 ** 32
  }
}

/**
 * A model with random BN affine parameters and statistics (the zoo's zero-initialised last BN
 * would keep every branch silent), so the branches, joins and heads all carry signal.
 */
function randomModel(spec: ModelSpec, seed: number, keepZeroInit: boolean): Model {
  const fresh = new Model(spec.layers, { ...spec, seed })
  const u = uniform(seed + 1)
  const tensors: NamedTensor[] = fresh.stateTensors().map((t) => {
    const data = Float32Array.from(t.data)
    const fill = (f: () => number) => {
      for (let i = 0; i < data.length; i++) data[i] = f()
    }
    // 1-d weights are BN's gamma; deep nets keep their zero-initialised last BNs, else the
    // gradient through 50-100 random layers explodes in the first step.
    const zeroInit = keepZeroInit && data.every((v) => v === 0)
    if (t.name.endsWith('.weight') && t.shape.length === 1 && !zeroInit) fill(() => 0.8 + 0.8 * u())
    else if (t.name.endsWith('.bias')) fill(() => 0.6 * u())
    else if (t.name.endsWith('running_mean')) fill(() => 0.4 * (u() - 0.5))
    else if (t.name.endsWith('running_var')) fill(() => 0.5 + u())
    return { ...t, data }
  })
  const checkpoint: Checkpoint = { path: 'random', spec, seed, tensors, trainer: [], metadata: {} }
  const m = Model.fromCheckpoint(checkpoint)
  void fresh.dispose()
  return m
}

interface Case {
  name: string
  spec: ModelSpec
  batch: number
  /** Small enough that 3 steps stay out of the chaotic regime where a single spike flipped by
   * float rounding (two correct engines sum in different orders) changes everything after. */
  lr?: number
}

/** The smallest zoo network worth converting: two stages of one block, 8x8 grey input. */
const tiny: zoo.SmallNetOptions = { inputShape: [1, 8, 8], classes: 3, blocks: [1, 1], widths: [4, 8] }

function zooCase(net: {
  name: string
  layers: ModelSpec['layers']
  timeSteps: number
  inputShape: number[]
  encoding: ModelSpec['encoding']
  blocks: number
}): Case {
  return {
    name: net.name,
    spec: { layers: net.layers, timeSteps: net.timeSteps, inputShape: net.inputShape, encoding: net.encoding },
    batch: 2,
    lr: net.blocks > 4 ? 0.002 : undefined,
  }
}

/** A 3x3 stride-2 average pool with ceil mode and padding left out of the mean, then a linear head. */
function ceilPoolHead(features: number, classes: number): LayerSpec[] {
  return [
    avgPool2d(3, { stride: 2, padding: 1, ceilMode: true, countIncludePad: false }),
    flatten(),
    linear(features, classes),
  ]
}

const imagenet = { inputShape: [3, 16, 16], classes: 4, timeSteps: 2 }
const dvs = { inputShape: [2, 8, 8], timeSteps: 2, classes: 3 }
const spikformerTiny = { inputShape: [1, 16, 16], classes: 3, timeSteps: 2, depth: 1, dim: 16, heads: 2, mlpRatio: 2 }
const CASES: Case[] = [
  {
    name: 'convDsnn',
    spec: {
      layers: zoo.convDsnn({ size: 8, width: 4, classes: 3 }),
      timeSteps: 2,
      inputShape: [1, 8, 8],
      encoding: 'direct',
    },
    batch: 3,
  },
  zooCase(zoo.smallDsnn(tiny)),
  zooCase(
    zoo.smallDsnn({
      ...tiny,
      family: 'sew',
      connect: 'iand',
    }),
  ),
  zooCase(zoo.smallDsnn({ ...tiny, family: 'spikingResnet' })),
  zooCase(
    zoo.smallDsnn({
      ...tiny,
      connect: 'spikingResnet',
      neuron: 'lif',
    }),
  ),
  ...[zoo.dsnn18, zoo.dsnn50, zoo.sewResnet18, zoo.sewResnet50, zoo.spikingResnet18, zoo.spikingResnet50].map((f) =>
    zooCase(f(imagenet)),
  ),
  // The deepest take minutes on two cores: DUALSTREAM_PYTORCH_FULL=1 adds them.
  ...(process.env.DUALSTREAM_PYTORCH_FULL === '1'
    ? [zoo.dsnn34, zoo.dsnn101, zoo.sewResnet34, zoo.sewResnet101, zoo.spikingResnet34, zoo.spikingResnet101].map((f) =>
        zooCase(f(imagenet)),
      )
    : []),
  {
    // SpikingJelly's other surrogates, each on its own neuron kind and reset.
    name: 'surrogates',
    spec: {
      layers: [
        conv2d(1, 4, 3, { padding: 1 }),
        batchNorm2d(4),
        lif({ surrogate: surrogate.erf(2), vReset: null }),
        sewBasicBlock(4, { connect: 'or', neuron: () => plif({ surrogate: surrogate.softSign(3) }) }),
        conv2d(4, 4, 3, { stride: 2, padding: 1 }),
        batchNorm2d(4),
        ifNode({ surrogate: surrogate.piecewiseExp(1.5) }),
        conv2d(4, 4, 3, { padding: 1, bias: false }),
        batchNorm2d(4),
        lif({ surrogate: surrogate.piecewiseLeakyRelu(0.8, 0.05), decayInput: false }),
        flatten(),
        linear(64, 3),
      ],
      timeSteps: 3,
      inputShape: [1, 8, 8],
      encoding: 'direct',
    },
    batch: 3,
  },
  {
    // Conv bias, BNs without affine parameters, ceil-mode max and average pooling (7 -> 4 -> 3,
    // each with a partial last window), an average pooling that leaves the padding out of its
    // divisor.
    name: 'options',
    spec: {
      layers: [
        conv2d(1, 4, 3, { padding: 1, bias: true }),
        batchNorm2d(4, { affine: false }),
        lif({ surrogate: surrogate.erf(2), vThreshold: 0.5 }),
        maxPool2d(2, { ceilMode: true }),
        sewBlock({
          branch: [
            conv2d(4, 4, 3, { padding: 1 }),
            batchNorm2d(4, { affine: false }),
            plif({ surrogate: surrogate.softSign(2) }),
            conv2d(4, 4, 3, { padding: 1 }),
            batchNorm2d(4),
            plif({ surrogate: surrogate.softSign(2) }),
          ],
          connect: 'or',
        }),
        ...ceilPoolHead(36, 3),
      ],
      timeSteps: 3,
      inputShape: [1, 7, 7],
      encoding: 'direct',
    },
    batch: 3,
  },
  zooCase(zoo.dsnn7b({ ...dvs, blocks: 2 })),
  zooCase(zoo.sew7b({ ...dvs, blocks: 2 })),
  zooCase(zoo.spikingResnet7b({ ...dvs, blocks: 2 })),
  zooCase(zoo.wideDsnn7b({ ...dvs, blocks: [1, 1] })),
  zooCase(zoo.wideSew7b({ ...dvs, blocks: [1, 1] })),
  zooCase(zoo.wideSpikingResnet7b({ ...dvs, blocks: [1, 1] })),
  // Spikformer: 16 tokens, 2 heads of 8 channels, with ADD, IAND and IAND + DST joins.
  ...(['add', 'iand', 'dst'] as const).map((join) =>
    zooCase(
      spikformer({
        ...spikformerTiny,
        connect: join === 'add' ? 'add' : 'iand',
        dst: join === 'dst',
      }),
    ),
  ),
]

/** max |a - b| / max(1, |b|): absolute for values up to 1, relative for BN variances above. */
function maxDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) return Infinity
  let m = 0
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]) / Math.max(1, Math.abs(b[i])))
  return m
}

pythonTest('every zoo family: the exported program matches dualstream (logits, 3 SGD steps)', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dualstream-pytorch-'))
  const ours: {
    name: string
    logits: Record<string, Float32Array>
    losses: number[]
    state: NamedTensor[]
    out: string
  }[] = []
  const manifest = []
  let built = Date.now()
  // DUALSTREAM_PYTORCH_ONLY=options,surrogates runs the named cases alone.
  const only = process.env.DUALSTREAM_PYTORCH_ONLY?.split(',')
  for (const [k, c] of CASES.entries()) {
    if (only && !only.includes(c.name)) continue
    const m = randomModel(c.spec, 100 + k, c.lr !== undefined)
    const classes =
      m.spec.layers.at(-1)!.type === 'dualStream'
        ? (m.spec.layers.at(-1) as { head: { outFeatures: number } }).head.outFeatures
        : (m.spec.layers.at(-1) as { outFeatures: number }).outFeatures
    m.configureTraining(
      sgd({ lr: c.lr ?? 0.05, momentum: 0.9, weightDecay: 1e-3 }),
      schedules.cosine({ totalSteps: 4, warmupSteps: 1 }),
      losses.crossEntropy({ headWeights: [1, 0.5] }),
    )
    const name = `${k}-${c.name}`
    const dir = join(root, name)
    await m.exportPyTorch(dir, { name: c.name })
    const shape =
      c.spec.encoding === 'direct' ? [c.batch, ...c.spec.inputShape] : [c.spec.timeSteps, c.batch, ...c.spec.inputShape]
    const u = uniform(7 + k)
    const n = shape.reduce((a, b) => a * b, 1)
    const x = Float32Array.from({ length: n }, () => (c.spec.encoding === 'direct' ? 2.5 * u() : u() < 0.3 ? 1 : 0))
    const y = Uint32Array.from({ length: c.batch }, (_, i) => i % classes)
    const input = join(root, `${name}.input.safetensors`)
    writeSafetensors(input, [
      { name: 'x', shape, data: x },
      { name: 'y', shape: [c.batch], data: Float32Array.from(y) },
    ])
    const logits: Record<string, Float32Array> = { fsnn: await m.predict(x, c.batch, 'fsnn') }
    if (m.heads === 2) logits.dsnn = await m.predict(x, c.batch, 'dsnn')
    const stepLosses: number[] = []
    for (let i = 0; i < 3; i++) stepLosses.push((await m.trainBatch(x, y)).loss)
    const out = join(root, `${name}.result.safetensors`)
    ours.push({ name, logits, losses: stepLosses, state: m.stateTensors(), out })
    manifest.push({ dir, input, steps: 3, out })
    await m.dispose()
    t.log(`${name}: dualstream ${((Date.now() - built) / 1000).toFixed(1)} s`)
    built = Date.now()
  }
  writeFileSync(join(root, 'manifest.json'), JSON.stringify(manifest))
  const started = Date.now()
  runPython(join(SCRIPTS, 'pytorch_parity.py'), [join(root, 'manifest.json')], { timeoutMs: 900_000 })
  t.log(`python: ${((Date.now() - started) / 1000).toFixed(1)} s for ${ours.length} models`)
  const failures: string[] = []
  const check = (ok: boolean, message: string) => {
    if (!ok) failures.push(message)
  }
  for (const o of ours) {
    const theirs = new Map(readSafetensors(o.out).tensors.map((x) => [x.name, x.data]))
    for (const [mode, l] of Object.entries(o.logits)) {
      const d = maxDiff(l, theirs.get(`logits.${mode}`)!)
      check(d <= TOL, `${o.name}: ${mode} logits differ by ${d}`)
    }
    o.losses.forEach((loss, i) => {
      const d = Math.abs(loss - theirs.get(`loss.${i}`)![0])
      check(d <= TOL, `${o.name}: step ${i} loss ${loss} vs ${theirs.get(`loss.${i}`)![0]}`)
    })
    let worst = 0
    let worstName = ''
    let compared = 0
    for (const s of o.state) {
      if (s.name.endsWith('.rng_state')) continue
      const d = maxDiff(s.data, theirs.get(`state.${s.name}`) ?? [])
      compared++
      if (d > worst) [worst, worstName] = [d, s.name]
    }
    check(worst <= TOL, `${o.name}: after 3 steps ${worstName} differs by ${worst}`)
    check(compared > 0, `${o.name}: no tensors compared`)
    t.log(`${o.name}: ${compared} tensors, worst ${worst.toExponential(2)} (${worstName})`)
  }
  t.deepEqual(failures, [])
})

pythonTest('SpikingJelly-zoo and AAP state_dicts import with their logits', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dualstream-torch-ref-'))
  runPython(join(SCRIPTS, 'torch_reference_models.py'), [root], { timeoutMs: 900_000 })
  const opts = { inputShape: [3, 16, 16], classes: 4, timeSteps: 2 }
  const sjSpikformer = { depth: 1, dim: 16, heads: 2, mlpRatio: 2 }
  const cases: [string, ModelSpec, 'spikingjelly' | 'aap'][] = [
    ['sj-sewResnet18', zoo.sewResnet18({ ...opts, connect: 'add' }), 'spikingjelly'],
    ['sj-sewResnet50', zoo.sewResnet50({ ...opts, connect: 'add' }), 'spikingjelly'],
    ['sj-spikingResnet18', zoo.spikingResnet18(opts), 'spikingjelly'],
    ['aap-dsnn18', zoo.dsnn18({ ...opts, connect: 'iand' }), 'aap'],
    ['aap-dsnn50', zoo.dsnn50({ ...opts, connect: 'iand' }), 'aap'],
    // SpikingJelly's Spikformer: Conv1d(k=1) weights [out, in, 1] become our linears [out, in].
    ['sj-spikformer-add', spikformer({ ...opts, ...sjSpikformer, connect: 'add' }), 'spikingjelly'],
    ['sj-spikformer-iand', spikformer({ ...opts, ...sjSpikformer, connect: 'iand' }), 'spikingjelly'],
  ]
  for (const [name, spec, from] of cases) {
    const io = new Map(readSafetensors(join(root, `${name}.io.safetensors`)).tensors.map((x) => [x.name, x]))
    const x = io.get('x')!
    const m = Model.fromTorch(join(root, `${name}.safetensors`), spec, { from })
    const fsnn = await m.predict(x.data, x.shape[0], 'fsnn')
    const d = maxDiff(fsnn, io.get('logits')!.data)
    t.true(d <= TOL, `${name}: logits differ by ${d}`)
    if (from === 'aap') {
      const dsnn = await m.predict(x.data, x.shape[0], 'dsnn')
      const da = maxDiff(dsnn, io.get('logits_acc')!.data)
      t.true(da <= TOL, `${name}: accumulation-head logits differ by ${da}`)
    }
    t.log(`${name}: ${m.stateTensors().length} tensors, logits within ${d.toExponential(2)}`)
    await m.dispose()
  }
  // A state_dict for another class count: the error names the tensor, both shapes and the layer.
  const wrong = zoo.dsnn18({ ...opts, classes: 5, connect: 'iand' })
  const err = t.throws(() => Model.fromTorch(join(root, 'aap-dsnn18.safetensors'), wrong, { from: 'aap' }))
  t.regex(
    err!.message,
    /fc\.weight: expected shape \[5, 512\], found \[4, 512\].*linear 512->5.*layers\.4\.head\.weight/,
  )
})

pythonTest('a SpikingJelly network with the options imported models use imports with its logits', async (t) => {
  // torch_reference_models.py's sj-options: biased convs, BNs without affine parameters, PLIF
  // neurons with the Erf, SoftSign, PiecewiseExp and PiecewiseLeakyReLU surrogates, ceil-mode
  // max pooling, a ceil-mode average pooling without the padding in its divisor.
  const root = mkdtempSync(join(tmpdir(), 'dualstream-torch-options-'))
  runPython(join(SCRIPTS, 'torch_reference_models.py'), [root, 'sj-options'])
  const sn = (s: ReturnType<typeof surrogate.erf>) => plif({ vThreshold: 0.3, detachReset: true, surrogate: s })
  const block = (cin: number, cout: number, stride: number, first: ReturnType<typeof surrogate.erf>) =>
    sewBlock({
      branch: [
        conv2d(cin, cout, 3, { stride, padding: 1 }),
        batchNorm2d(cout, { affine: false }),
        sn(first),
        conv2d(cout, cout, 3, { padding: 1 }),
        batchNorm2d(cout),
        sn(surrogate.piecewiseLeakyRelu(1, 0.01)),
      ],
      shortcut:
        stride === 1 && cin === cout
          ? undefined
          : [conv2d(cin, cout, 1, { stride }), batchNorm2d(cout, { affine: false }), sn(surrogate.piecewiseExp(1))],
      connect: 'add',
    })
  const spec: ModelSpec = {
    layers: [
      conv2d(3, 8, 3, { padding: 1 }),
      batchNorm2d(8, { affine: false }),
      sn(surrogate.erf(2)),
      maxPool2d(2, { ceilMode: true }),
      block(8, 8, 1, surrogate.erf(2)),
      block(8, 16, 2, surrogate.softSign(2)),
      ...ceilPoolHead(144, 4),
    ],
    timeSteps: 2,
    inputShape: [3, 13, 13],
    encoding: 'direct',
  }
  const io = new Map(readSafetensors(join(root, 'sj-options.io.safetensors')).tensors.map((x) => [x.name, x]))
  const x = io.get('x')!
  const file = join(root, 'sj-options.safetensors')
  const m = Model.fromTorch(file, spec, { from: 'spikingjelly' })
  const names = m.stateTensors().map((s) => s.name)
  t.false(names.includes('layers.1.weight'), 'a BN without affine parameters has no weight')
  t.true(names.includes('layers.0.bias'))
  const logits = await m.predict(x.data, x.shape[0], 'fsnn')
  const d = maxDiff(logits, io.get('logits')!.data)
  t.true(d <= TOL, `logits differ by ${d}`)
  t.log(`sj-options: ${names.length} tensors, logits within ${d.toExponential(2)}`)
  t.true(new Set(Array.from(logits, (v) => v.toFixed(4))).size > 4, 'the logits must depend on the input')
  await m.dispose()
  // The same through the CLI.
  const specFile = join(root, 'spec.json')
  writeFileSync(specFile, JSON.stringify(spec))
  const out = join(root, 'imported.safetensors')
  execFileSync(
    process.execPath,
    [
      '--import=tsx',
      join(__dirname, '..', 'ts', 'cli.ts'),
      ...['import', file, '--model', specFile, '--from', 'spikingjelly', '--out', out],
    ],
    { encoding: 'utf8' },
  )
  const back = await Model.load(out)
  t.true(maxDiff(await back.predict(x.data, x.shape[0], 'fsnn'), io.get('logits')!.data) <= TOL)
  await back.dispose()
})

test('import: a state_dict missing a tensor or in the wrong layout is refused by name', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dualstream-torch-err-'))
  const spec = zoo.smallDsnn(tiny)
  const m = new Model(spec.layers, spec)
  const file = join(root, 'state.safetensors')
  const tensors = toTorchTensors(m.stateTensors())
  writeSafetensors(file, tensors)
  const back = Model.fromTorch(file, spec)
  t.deepEqual(
    back.stateTensors().map((x) => x.name),
    m.stateTensors().map((x) => x.name),
  )
  await back.dispose()
  writeSafetensors(
    file,
    tensors.filter((x) => x.name !== 'layers.3.stages.1.shortcut.0.weight'),
  )
  const missing = t.throws(() => Model.fromTorch(file, spec))
  t.regex(missing!.message, /layers\.3\.stages\.1\.shortcut\.0\.weight is missing; the spec's conv2d 4->8 1x1 stride 2/)
  writeSafetensors(file, tensors)
  const other = t.throws(() => Model.fromTorch(file, spec, { from: 'aap' }))
  t.regex(other!.message, /conv1\.weight is missing/)
  await m.dispose()
})

pythonTest('round trip: export, torchrun with 2 processes, import, evaluate gives torch accuracy', async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'dualstream-torch-rt-'))
  const cli = (args: string[]): string =>
    execFileSync(process.execPath, ['--import=tsx', join(__dirname, '..', 'ts', 'cli.ts'), ...args], {
      encoding: 'utf8',
    })
  const model = new Model(zoo.convDsnn({ width: 4 }), { timeSteps: 2, inputShape: [1, 28, 28], seed: 3 })
  model.configureTraining(sgd({ lr: 0.05, momentum: 0.9 }), schedules.cosine({ totalSteps: 30 }))
  const initial = join(root, 'initial.safetensors')
  await model.save(initial)
  await model.dispose()
  cli(['export', initial, '--format', 'pytorch', '--out', join(root, 'export')])
  // 1000 training and 500 test images keep it quick; the bench trains a full epoch.
  const data = loadFashionMnist({ limitPerClass: 100 })
  const file = (d: typeof data.train, path: string, n: number) =>
    writeSafetensors(path, [
      { name: 'x', shape: [n, 1, 28, 28], data: d.images.subarray(0, n * 784) },
      { name: 'y', shape: [n], data: Float32Array.from(d.labels.subarray(0, n)) },
    ])
  file(data.train, join(root, 'train.safetensors'), 1000)
  file(data.test, join(root, 'test.safetensors'), 500)
  // --standalone: a rendezvous on a free local port, so no other job's torchrun can join ours.
  const torchrun = () =>
    spawnSync(
      python!,
      [
        '-m',
        'torch.distributed.run',
        '--standalone',
        '--nproc_per_node=2',
        join(root, 'export', 'train.py'),
        ...['--train', join(root, 'train.safetensors'), '--val', join(root, 'test.safetensors')],
        ...['--epochs', '1', '--batch-size', '16', '--device', 'cpu', '--out', join(root, 'run')],
      ],
      { env: { ...process.env, OMP_NUM_THREADS: '1' }, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    )
  let run = torchrun()
  // A worker killed by a signal (gloo aborts a process when a socket fails under a loaded host)
  // is the machine, not train.py: one more run. A Python error in train.py fails at once.
  if (run.status !== 0 && !/File "[^"]*train\.py", line/.test(run.stderr) && /Signal \d+/.test(run.stderr)) {
    t.log(`torchrun: a worker died by a signal, running again:\n${keyLines(run.stderr)}`)
    rmSync(join(root, 'run'), { recursive: true, force: true })
    run = torchrun()
  }
  if (run.status !== 0) {
    throw new Error(`torchrun exited with ${run.status ?? run.signal}:\n${keyLines(run.stderr)}\n---\n${run.stderr}`)
  }
  const torchRow = JSON.parse(
    readFileSync(join(root, 'run', 'metrics.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .at(-1)!,
  )
  t.is(torchRow.processes, 2)
  cli([
    'import',
    join(root, 'run', 'last.safetensors'),
    '--model',
    join(root, 'export', 'spec.json'),
    '--out',
    join(root, 'back.safetensors'),
  ])
  const back = await Model.load(join(root, 'back.safetensors'))
  const test500 = new TensorDataset({
    name: 'test500',
    images: data.test.images.subarray(0, 500 * 784),
    labels: data.test.labels.subarray(0, 500),
    sampleShape: [1, 28, 28],
    numClasses: 10,
  })
  for (const mode of ['fsnn', 'dsnn'] as const) {
    const r = await back.evaluate(test500, { mode })
    t.true(
      Math.abs(r.accuracy - torchRow.validation[mode]) <= 0.001,
      `${mode}: ${r.accuracy} vs torch ${torchRow.validation[mode]}`,
    )
  }
  // The weights moved away from the exported ones: this is what torch trained.
  const before = await Model.load(initial)
  const moved = back.stateTensors().some((x, i) => maxDiff(x.data, before.stateTensors()[i].data) > 1e-3)
  t.true(moved)
  await before.dispose()
  await back.dispose()
})

/** The lines of a torchrun log that say why a worker stopped, ahead of the agent's traceback. */
function keyLines(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => /terminate called|what\(\)|Error|exitcode|Signal|enforce/.test(l))
    .slice(0, 20)
    .join('\n')
}
