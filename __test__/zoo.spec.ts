import test from 'ava'
import type { LayerSpec, ZooNet } from '../ts/index'
import { adam, batchNorm2d, DualstreamError, ifNode, losses, Model, sequential } from '../ts/index'
import { spreadBlocks } from '../ts/internal'
import * as zoo from '../ts/zoo'

// ---------------------------------------------------------------------------------------------
// Parameter counts, derived by hand from the architecture (not read back from the builders).
// Conv layers have no bias (BN follows); BN has gamma and beta (2 per channel; running
// statistics are buffers, not parameters); IF neurons have no parameters, PLIF one each.
// ---------------------------------------------------------------------------------------------
const conv = (k: number, cin: number, cout: number) => k * k * cin * cout
const bn = (c: number) => 2 * c
const fc = (inF: number, outF: number) => inF * outF + outF
const stem = conv(7, 3, 64) + bn(64) // 9,408 + 128
const head = fc(512 * 1, 1000) // resnet18/34; x4 for bottlenecks below

// torchvision's downsample (and our spike shortcut SN(BN(conv1x1 s)): SN adds nothing).
const shortcut = (cin: number, cout: number) => conv(1, cin, cout) + bn(cout)

function resnetBasic(blocks: number[]): number {
  let total = stem + head
  let cin = 64
  blocks.forEach((n, i) => {
    const c = 64 * 2 ** i
    for (let b = 0; b < n; b++) {
      total += conv(3, cin, c) + bn(c) + conv(3, c, c) + bn(c)
      if (cin !== c) total += shortcut(cin, c)
      cin = c
    }
  })
  return total
}

function resnetBottleneck(blocks: number[]): number {
  let total = stem + fc(2048, 1000)
  let cin = 64
  blocks.forEach((n, i) => {
    const planes = 64 * 2 ** i
    const out = planes * 4
    for (let b = 0; b < n; b++) {
      total += conv(1, cin, planes) + bn(planes) + conv(3, planes, planes) + bn(planes) + conv(1, planes, out) + bn(out)
      if (cin !== out) total += shortcut(cin, out) // includes layer1's stride-1 64 -> 256
      cin = out
    }
  })
  return total
}

// The AAP projection: depthwise 3x3 (C_in weights of 3x3, when strided) + 1x1 C_in -> C_out + BN.
const projection = (cin: number, cout: number, strided: boolean) => (strided ? 9 * cin : 0) + cin * cout + bn(cout)

// ResNet-18/34 downsample at layer2..4: 64->128, 128->256, 256->512, all stride 2.
//   576 + 8,192 + 256 = 9,024;  1,152 + 32,768 + 512 = 34,432;  2,304 + 131,072 + 1,024 = 134,400
const aapBasic = projection(64, 128, true) + projection(128, 256, true) + projection(256, 512, true)
// ResNet-50/101: layer1 64->256 at stride 1 (1x1 only): 16,384 + 512 = 16,896; then 256->512,
// 512->1024, 1024->2048 at stride 2: 134,400 + 530,944 + 2,110,464.
const aapBottleneck =
  projection(64, 256, false) + projection(256, 512, true) + projection(512, 1024, true) + projection(1024, 2048, true)

test('the hand-derived ResNet counts are the torchvision numbers, and the AAP adds a fixed amount', (t) => {
  t.is(resnetBasic([2, 2, 2, 2]), 11_689_512)
  t.is(resnetBasic([3, 4, 6, 3]), 21_797_672)
  t.is(resnetBottleneck([3, 4, 6, 3]), 25_557_032)
  t.is(resnetBottleneck([3, 4, 23, 3]), 44_549_160)
  t.is(aapBasic, 9_024 + 34_432 + 134_400)
  t.is(aapBasic, 177_856)
  t.is(aapBottleneck, 16_896 + 134_400 + 530_944 + 2_110_464)
  t.is(aapBottleneck, 2_792_704)
})

function count(net: ZooNet): number {
  const m = new Model(net.layers, net)
  const n = m.parameterCount
  void m.dispose()
  return n
}

test('dsnn18/34/50/101 have the ResNet parameters plus the AAP projections', (t) => {
  t.is(count(zoo.dsnn18()), 11_689_512 + 177_856) // 11,867,368
  t.is(count(zoo.dsnn34()), 21_797_672 + 177_856) // 21,975,528
  t.is(count(zoo.dsnn50()), 25_557_032 + 2_792_704) // 28,349,736
  t.is(count(zoo.dsnn101()), 44_549_160 + 2_792_704) // 47,341,864
  // Without the AAP the full-spike network is exactly a ResNet's parameter set.
  t.is(count(zoo.dsnn18({ aap: false })), 11_689_512)
  t.is(count(zoo.dsnn50({ aap: false })), 25_557_032)
  // classes only changes the FC: 512 * 10 + 10 instead of 512 * 1000 + 1000.
  t.is(count(zoo.dsnn18({ classes: 10 })), 11_867_368 - fc(512, 1000) + fc(512, 10))
})

test('the Spiking ResNet and SEW ResNet families have exactly the ResNet parameters', (t) => {
  t.is(count(zoo.spikingResnet18()), 11_689_512)
  t.is(count(zoo.spikingResnet34()), 21_797_672)
  t.is(count(zoo.spikingResnet50()), 25_557_032)
  t.is(count(zoo.spikingResnet101()), 44_549_160)
  t.is(count(zoo.sewResnet18()), 11_689_512)
  t.is(count(zoo.sewResnet34()), 21_797_672)
  t.is(count(zoo.sewResnet50()), 25_557_032)
  t.is(count(zoo.sewResnet101({ connect: 'iand' })), 44_549_160)
})

function blocksOf(layers: readonly LayerSpec[]): LayerSpec[] {
  return layers.flatMap((l) => (l.type === 'dualStream' ? (l.stages as unknown as LayerSpec[]) : [l]))
}

test('dsnn18 follows the paper: ImageNet stem, IAND, IF, T = 4, zero-init, downsampling with AAP projections', (t) => {
  const net = zoo.dsnn18()
  t.is(net.timeSteps, 4)
  t.deepEqual(net.inputShape, [3, 224, 224])
  t.is(net.encoding, 'direct')
  t.is(net.blocks, 8)
  const [c, b, sn, mp, trunk] = net.layers
  t.like(c, {
    type: 'conv2d',
    inChannels: 3,
    outChannels: 64,
    kernelSize: [7, 7],
    stride: [2, 2],
    padding: [3, 3],
    bias: false,
  })
  t.like(b, { type: 'batchNorm2d', numFeatures: 64, initWeight: 1 })
  t.is(sn.type, 'if')
  t.like(mp, { type: 'maxPool2d', kernelSize: [3, 3], stride: [2, 2], padding: [1, 1] })
  t.is(net.layers.length, 5)
  if (trunk.type !== 'dualStream') return t.fail('the trunk is a dualStream layer')
  t.true(trunk.aap)
  t.deepEqual(trunk.head, { inFeatures: 512, outFeatures: 1000, bias: true })
  const blocks = trunk.stages.filter((s) => s.type === 'block')
  t.is(blocks.length, 8)
  for (const blk of blocks) {
    if (blk.type !== 'block') continue
    t.is(blk.connect, 'iand')
    const bns = blk.branch.filter((l) => l.type === 'batchNorm2d')
    t.like(bns.at(-1), { initWeight: 0 })
    t.is(blk.branch.at(-1)!.type, 'if')
  }
  const down = blocks.filter((s) => s.type === 'block' && s.projection !== null)
  t.is(down.length, 3)
  for (const [i, cin] of [64, 128, 256].entries()) {
    const blk = down[i]
    if (blk.type !== 'block') continue
    t.deepEqual(
      blk.shortcut!.map((l) => l.type),
      ['conv2d', 'batchNorm2d', 'if'],
    )
    t.like(blk.shortcut![0], { kernelSize: [1, 1], stride: [2, 2], inChannels: cin, outChannels: 2 * cin })
    t.deepEqual(
      blk.projection!.map((l) => l.type),
      ['conv2d', 'conv2d', 'batchNorm2d', 'relu'],
    )
    t.like(blk.projection![0], {
      kernelSize: [3, 3],
      stride: [2, 2],
      padding: [1, 1],
      groups: cin,
      inChannels: cin,
      outChannels: cin,
    })
    t.like(blk.projection![1], { kernelSize: [1, 1], stride: [1, 1], inChannels: cin, outChannels: 2 * cin })
  }
  // Bottleneck layer1's first block changes channels at stride 1: the projection is a 1x1 conv.
  const first50 = blocksOf(zoo.dsnn50().layers).find((l) => l.type === ('block' as string))
  if (!first50) return t.fail('dsnn50 has dual-stream blocks')
  const p = (first50 as unknown as { projection: LayerSpec[] }).projection
  t.deepEqual(
    p.map((l) => l.type),
    ['conv2d', 'batchNorm2d', 'relu'],
  )
  t.like(p[0], { kernelSize: [1, 1], inChannels: 64, outChannels: 256 })
  t.is(zoo.dsnn101().blocks, 33)
  t.is(zoo.spikingResnet34().blocks, 16)
})

test('a 64x64 smoke forward of dsnn18 gives [N, classes] logits in both modes', async (t) => {
  const net = zoo.dsnn18({ inputShape: [3, 64, 64], classes: 7, timeSteps: 2 })
  const m = new Model(net.layers, net)
  const x = new Float32Array(2 * 3 * 64 * 64).map((_, i) => ((i * 7919) % 101) / 101)
  const ys = await m.predict(x, 2, 'fsnn')
  const ya = await m.predict(x, 2, 'dsnn')
  t.is(ys.length, 2 * 7)
  t.is(ya.length, 2 * 7)
  t.true([...ys, ...ya].every(Number.isFinite))
  await m.dispose()
})

// ---------------------------------------------------------------------------------------------
// 7B-Net and Wide-7B-Net. Hand counts: conv3x3 c->c = 9c^2, BN 2c, PLIF 1 parameter.
// ---------------------------------------------------------------------------------------------
const dsBlock = (c: number) => 2 * (conv(3, c, c) + bn(c) + 1) // conv-BN-PLIF twice

test('7B-Net and Wide-7B-Net build with the SPEC layout and the hand-derived parameter counts', (t) => {
  const d = zoo.dsnn7b()
  t.deepEqual([d.timeSteps, d.classes, d.encoding, d.blocks], [16, 11, 'sequence', 7])
  t.deepEqual(d.inputShape, [2, 128, 128])
  const stem7 = conv(3, 2, 32) + bn(32) + 1
  t.is(count(d), stem7 + 7 * dsBlock(32) + fc(32, 11)) // 641 + 129,934 + 363 = 130,938
  t.is(count(zoo.sew7b()), 130_938)
  // The Spiking ResNet branch ends with its BN (the residual neuron is a parameter-free IF).
  t.is(count(zoo.spikingResnet7b()), 130_938 - 7)
  const stages = (d.layers.at(-1) as { stages: { type: string }[] }).stages
  t.deepEqual(
    stages.map((s) => s.type),
    Array(7).fill(['block', 'maxPool2d']).flat(),
  )
  const dsb = stages[0] as unknown as { branch: LayerSpec[]; shortcut: null; projection: null; connect: string }
  t.deepEqual(
    dsb.branch.map((l) => l.type),
    ['conv2d', 'batchNorm2d', 'plif', 'conv2d', 'batchNorm2d', 'plif'],
  )
  t.like(dsb.branch[2], { tau: 2, detachReset: true })
  t.is(dsb.shortcut, null)
  t.is(dsb.projection, null)
  t.is(dsb.connect, 'iand')

  const w = zoo.wideDsnn7b()
  t.deepEqual([w.timeSteps, w.classes, w.blocks], [16, 10, 8])
  const wideSew =
    conv(3, 2, 64) + bn(64) + 1 + 4 * dsBlock(64) + (conv(3, 64, 128) + bn(128) + 1) + 3 * dsBlock(128) + fc(128, 10)
  t.is(wideSew, 1_258_778)
  t.is(count(zoo.wideSew7b()), wideSew)
  t.is(count(zoo.wideSpikingResnet7b()), wideSew - 7)
  // The DSNN transition block adds its spike shortcut conv1x1-BN-PLIF and the projection conv1x1-BN.
  t.is(count(w), wideSew + (conv(1, 64, 128) + bn(128) + 1) + (conv(1, 64, 128) + bn(128)))
  const wStages = (w.layers.at(-1) as { stages: { type: string }[] }).stages
  t.deepEqual(
    wStages.map((s) => s.type),
    [...Array(4).fill(['block', 'maxPool2d']).flat(), 'block', ...Array(3).fill(['block', 'maxPool2d']).flat()],
  )
  const sewLayers = zoo.wideSew7b().layers.map((l) => l.type)
  t.deepEqual(sewLayers.slice(11, 14), ['conv2d', 'batchNorm2d', 'plif'])
})

test('7B nets run a forward on sequence input: full 7B at 128x128 (T = 2), reduced wide nets', async (t) => {
  const run = async (net: ZooNet, n: number) => {
    const m = new Model(net.layers, net)
    const steps = net.encoding === 'sequence' ? net.timeSteps : 1
    const x = new Float32Array(steps * n * net.inputShape.reduce((a, b) => a * b)).map((_, i) =>
      (i * 2654435761) % 7 === 0 ? 1 : 0,
    )
    const y = await m.predict(x, n, 'fsnn')
    t.is(y.length, n * net.classes, net.name)
    t.true(y.every(Number.isFinite), net.name)
    if (m.heads === 2) t.is((await m.predict(x, n, 'dsnn')).length, n * net.classes)
    await m.dispose()
  }
  await run(zoo.dsnn7b({ timeSteps: 2 }), 1)
  await run(zoo.wideDsnn7b({ blocks: [1, 1], inputShape: [2, 8, 8], timeSteps: 3 }), 2)
  await run(zoo.wideSew7b({ blocks: [2, 1], inputShape: [2, 16, 16], timeSteps: 2 }), 2)
  await run(zoo.wideSpikingResnet7b({ blocks: [1, 2], inputShape: [2, 8, 8], timeSteps: 2 }), 2)
  await run(zoo.spikingResnet7b({ blocks: 2, inputShape: [2, 8, 8], timeSteps: 2, encoding: 'direct' }), 2)
})

// ---------------------------------------------------------------------------------------------
// Small-input variants.
// ---------------------------------------------------------------------------------------------
const residualTypes = ['block', 'sewBlock', 'spikingResnetBlock']
const residualCount = (net: ZooNet) => blocksOf(net.layers).filter((l) => residualTypes.includes(l.type)).length

test('small variants: depth is a parameter, spread over the stages', (t) => {
  t.deepEqual(spreadBlocks(4, 3), [2, 1, 1])
  t.deepEqual(spreadBlocks(10, 3), [4, 3, 3])
  t.deepEqual(spreadBlocks(20, 3), [7, 7, 6])
  for (const family of ['dsnn', 'spikingResnet', 'sew'] as const) {
    for (const depth of [4, 10, 20]) {
      const net = zoo.smallDsnn({ inputShape: [1, 28, 28], classes: 10, family, blocks: depth })
      t.is(net.blocks, depth)
      t.is(residualCount(net), depth, `${family} ${depth}`)
    }
  }
  const net = zoo.smallDsnn({ inputShape: [3, 32, 32], classes: 10, blocks: [1, 2], widths: [8, 24] })
  t.is(residualCount(net), 3)
  t.is(net.name, 'small-dsnn-1-2')
  const trunk = net.layers.at(-1)!
  t.like(trunk, { type: 'dualStream', head: { inFeatures: 24, outFeatures: 10 } })
  // 28x28 (no maxpool stem, stride-2 stages) and 34x34 build; a bottleneck variant too.
  for (const shape of [
    [1, 28, 28],
    [2, 34, 34],
    [3, 32, 32],
  ]) {
    t.notThrows(() =>
      count(zoo.smallDsnn({ inputShape: shape, classes: 10, blocks: 3, kind: 'bottleneck', widths: [4, 8, 16] })),
    )
  }
})

test('small variants of all three families train one step, and the DSNN passes the full-spike audit', async (t) => {
  const n = 4
  const x = new Float32Array(n * 28 * 28).map((_, i) => ((i * 37) % 29) / 29)
  const y = new Uint32Array([0, 1, 2, 1])
  for (const family of ['dsnn', 'spikingResnet', 'sew'] as const) {
    const net = zoo.smallDsnn({ inputShape: [1, 28, 28], classes: 3, family, blocks: 4, widths: [4, 8], timeSteps: 2 })
    const m = sequential(net.layers, { ...net, seed: 3 })
    m.configureTraining(adam({ lr: 0.01 }), undefined, losses.crossEntropy())
    const r = await m.trainBatch(x, y)
    t.true(Number.isFinite(r.loss) && r.loss > 0, `${family} loss ${r.loss}`)
    t.is(r.count, n)
    t.is(r.headLosses.length, family === 'dsnn' ? 2 : 0)
    if (family === 'dsnn') t.true((await m.audit(x, n)).passed)
    await m.dispose()
  }
  // SEW ADD breaks the full-spike property once branch and shortcut fire together (not at zero
  // init, where the branch is silent): low thresholds make both fire.
  const sew = zoo.smallDsnn({
    inputShape: [1, 28, 28],
    classes: 3,
    family: 'sew',
    blocks: 2,
    widths: [4, 8],
    timeSteps: 2,
    zeroInit: false,
    neuron: () => ifNode({ vThreshold: 0.2 }),
  })
  const audit = await sequential(sew.layers, sew).audit(x, n)
  t.false(audit.passed)
  t.is(audit.offending[0].example, 2)
})

test('every builder validates its arguments with ERR_ARG naming the argument', (t) => {
  const bad = (fn: () => unknown, arg: RegExp) => {
    const e = t.throws(fn, { instanceOf: DualstreamError })
    t.is(e?.code, 'ERR_ARG')
    t.regex(e!.message, arg)
  }
  bad(() => zoo.dsnn18({ classes: 0 }), /^dsnn18 classes: expected a positive integer, received 0/)
  bad(() => zoo.dsnn50({ inputShape: [224, 224] }), /^dsnn50 inputShape/)
  bad(() => zoo.dsnn34({ timeSteps: 1.5 }), /^dsnn34 timeSteps/)
  bad(() => zoo.dsnn18({ connect: 'add' as never }), /^dsnn18 connect: .*full-spike/)
  bad(() => zoo.dsnn101({ neuron: 'relu' as never }), /^dsnn101 neuron/)
  bad(
    () => zoo.dsnn101({ neuron: () => batchNorm2d(4) }),
    /^dsnn101 neuron: expected a function returning a neuron spec/,
  )
  bad(() => zoo.dsnn18({ zeroInit: 'yes' as never }), /^dsnn18 zeroInit/)
  bad(() => zoo.dsnn18({ block: 3 } as never), /^dsnn18 options\.block/)
  bad(() => zoo.spikingResnet18({ connect: 'iand' } as never), /^spikingResnet18 connect: expected to be omitted/)
  bad(() => zoo.sewResnet18({ connect: 'nand' as never }), /^sewResnet18 connect/)
  bad(() => zoo.sewResnet50({ aap: false } as never), /^sewResnet50 options\.aap/)
  bad(() => zoo.dsnn7b({ inputShape: [2, 64, 64] }), /^dsnn7b inputShape: expected height and width of at least 128/)
  bad(() => zoo.dsnn7b({ blocks: 0 }), /^dsnn7b blocks/)
  bad(() => zoo.wideDsnn7b({ blocks: [4] as never }), /^wideDsnn7b blocks: expected an array of 2/)
  bad(() => zoo.wideSew7b({ encoding: 'rate' as never }), /^wideSew7b encoding/)
  bad(() => zoo.smallDsnn(undefined as never), /^smallDsnn options/)
  bad(() => zoo.smallDsnn({ inputShape: [1, 28, 28] } as never), /^smallDsnn classes/)
  bad(() => zoo.smallDsnn({ inputShape: [1, 28, 28], classes: 10, family: 'vgg' as never }), /^smallDsnn family/)
  bad(
    () => zoo.smallDsnn({ inputShape: [1, 28, 28], classes: 10, blocks: 2 }),
    /^smallDsnn blocks: expected at least one block per stage/,
  )
  bad(
    () => zoo.smallDsnn({ inputShape: [1, 28, 28], classes: 10, blocks: [2, 2], widths: [8, 16, 32] }),
    /^smallDsnn blocks: expected an array of 3/,
  )
  bad(() => zoo.smallDsnn({ inputShape: [1, 28, 28], classes: 10, family: 'sew', aap: false }), /^smallDsnn aap/)
  bad(() => zoo.smallDsnn({ inputShape: [1, 28, 28], classes: 10, widths: [8, -1] }), /^smallDsnn widths\[1\]/)
})
