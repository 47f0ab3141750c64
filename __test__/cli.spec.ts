import { spawn } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { writeSafetensors } from '../ts/checkpoint'
import { writeEvents } from '../ts/data'
import { batchNorm2d, conv2d, convDsnn, dualBasicBlock, dualStream, lif, maxPool2d, sequential } from '../ts/index'
import { Model, readCheckpoint } from '../ts/model'
import { flags, run, summaryOf } from './cli-run'
import { parseXml, texts } from './svg'

const cli = join(__dirname, '..', 'dist', 'cli.js')
const tmp = () => mkdtempSync(join(tmpdir(), 'dualstream-cli-'))

// A data folder: four classes, the brightest quadrant of a noisy size x size image.
function dataFolder(trainCount = 192, size = 8): string {
  const dir = tmp()
  let s = 7
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
  const pixels = size * size
  for (const [split, n] of [
    ['train', trainCount],
    ['test', 64],
  ] as const) {
    const images = new Float32Array(n * pixels)
    const labels = new Float32Array(n)
    for (let i = 0; i < n; i++) {
      labels[i] = i % 4
      for (let p = 0; p < pixels; p++) {
        const quadrant = (p >= pixels / 2 ? 2 : 0) + (p % size >= size / 2 ? 1 : 0)
        images[i * pixels + p] = (quadrant === i % 4 ? 0.5 : 0.2) + 0.7 * rand()
      }
    }
    writeSafetensors(join(dir, `${split}.safetensors`), [
      { name: 'images', shape: [n, 1, size, size], data: images },
      { name: 'labels', shape: [n], data: labels },
    ])
  }
  return dir
}

/** A model JSON file: stem conv-BN-LIF-pool and one dual-stream OR block, `width` channels. */
function modelFile(width: number, size = 8): string {
  const path = join(tmp(), `dsnn-${width}.json`)
  const layers = [
    conv2d(1, width, 3, { padding: 1, bias: false }),
    batchNorm2d(width),
    lif(),
    maxPool2d(2),
    dualStream({
      stages: [dualBasicBlock(width, width, { connect: 'or' })],
      classes: 4,
      headPool: 'flatten',
      features: (width * size * size) / 4,
    }),
  ]
  writeFileSync(path, JSON.stringify({ timeSteps: 2, layers }))
  return path
}

const data = dataFolder()
const model4 = modelFile(4)
const quick = ['--dataset', data, '--model', model4, '--batch-size', '16', '--seed', '5']
const timing = (r: Record<string, unknown>) => ({ ...r, seconds: 0, samplesPerSecond: 0 })
const metrics = (dir: string): Record<string, number>[] =>
  readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => timing(JSON.parse(l)) as never)

test('a short run writes the run folder: config, metrics as JSONL and CSV, checkpoints, plots', (t) => {
  const dir = join(tmp(), 'run')
  const config = join(tmp(), 'config.json')
  writeFileSync(config, JSON.stringify({ epochs: 2, 'batch-size': 32, lr: 0.01, seed: 5 }))
  // Flags override the config file.
  const r = run(
    'train',
    '--config',
    config,
    '--dataset',
    data,
    '--model',
    model4,
    '--batch-size',
    '16',
    '--epochs',
    '3',
    '--weight-decay',
    '0.05',
    '--out',
    dir,
    '--json',
  )
  t.is(r.status, 0, r.stderr)
  const lines = r.stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.deepEqual(
    lines.map((l) => l.type),
    ['epoch', 'epoch', 'epoch', 'summary'],
  )
  const summary = lines[3]
  t.is(summary.run, dir)
  t.false(summary.stopped)
  t.true(summary.testAccuracy > 0.5, `testAccuracy ${summary.testAccuracy}`)
  const saved = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'))
  t.like(saved, {
    epochs: 3,
    'batch-size': 16,
    lr: 0.01,
    seed: 5,
    'time-steps': 2,
    optimizer: 'adam',
    'weight-decay': 0.05,
    schedule: 'cosine',
    dataset: data,
    model: model4,
  })
  // The weight decay reaches the optimizer the checkpoint records (an L2 term for adam).
  t.like(readCheckpoint(join(dir, 'checkpoints', 'last.safetensors')).training?.optimizer, {
    type: 'adam',
    lr: 0.01,
    weightDecay: 0.05,
  })
  const rows = metrics(dir)
  t.deepEqual(
    rows,
    lines.slice(0, 3).map(({ type, ...row }) => timing(row)),
  )
  t.deepEqual(
    rows.map((m) => m.epoch),
    [1, 2, 3],
  )
  t.deepEqual(
    rows.map((m) => m.step),
    [12, 24, 36],
  )
  t.deepEqual(
    rows.map((m) => typeof m.dsnnTestAccuracy),
    ['undefined', 'undefined', 'number'],
    'the DSNN is evaluated after the last epoch',
  )
  const csv = readFileSync(join(dir, 'metrics.csv'), 'utf8').trim().split('\n')
  t.is(
    csv[0],
    'epoch,step,trainLoss,trainAccuracy,testLoss,testAccuracy,dsnnTestAccuracy,firingRate,learningRate,samplesPerSecond,seconds',
  )
  t.is(csv.length, 4)
  t.is(Number(csv[3].split(',')[5]), rows[2].testAccuracy)
  t.deepEqual(readdirSync(join(dir, 'checkpoints')).sort(), ['best.safetensors', 'last.safetensors', 'model.json'])
  t.deepEqual(
    JSON.parse(readFileSync(join(dir, 'checkpoints', 'model.json'), 'utf8')),
    readCheckpoint(join(dir, 'checkpoints', 'last.safetensors')).spec,
  )
  t.deepEqual(readdirSync(join(dir, 'plots')).sort(), [
    'accuracy.svg',
    'energy.svg',
    'firing-rates.svg',
    'gradient-norms.svg',
    'loss.svg',
  ])
  // The end-of-run energy report: the full-spike network on the 64 test samples, its stem the only MAC.
  const energy = JSON.parse(readFileSync(join(dir, 'energy.json'), 'utf8'))
  t.like(energy, { mode: 'fsnn', samples: 64, totals: { mac: 9 * 4 * 8 * 8 } })
  t.deepEqual(summary.energy, { dynamicMj: energy.totals.dynamicMj, ac: energy.totals.ac, mac: energy.totals.mac })
  const loss = parseXml(readFileSync(join(dir, 'plots', 'loss.svg'), 'utf8'))
  t.true(texts(loss).includes('train') && texts(loss).includes('test'))
  // The best checkpoint is the epoch with the best full-spike test accuracy.
  const e = run('evaluate', dir, '--json')
  t.is(e.status, 0, e.stderr)
  const ev = JSON.parse(e.stdout)
  t.true(ev.checkpoint.endsWith('best.safetensors'))
  t.deepEqual(
    ev.results.map((x: { mode: string }) => x.mode),
    ['fsnn', 'dsnn'],
  )
  t.is(ev.results[0].accuracy, Math.max(...rows.map((m) => m.testAccuracy as number)))
  // A new run may not overwrite this one.
  const again = run('train', ...quick, '--epochs', '1', '--out', dir)
  t.is(again.status, 2)
  t.regex(again.stderr, /already holds a run \(config\.json\).*--resume/)
})

function interruptedRun(args: string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, 'train', ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
    let stderr = ''
    let sent = false
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString()
      // Ctrl-C once training is under way (the first progress line of epoch 2).
      if (!sent && /epoch 2\/\d+ +step/.test(stderr)) {
        sent = true
        child.kill('SIGINT')
      }
    })
    child.stdout.resume()
    child.on('close', (code) => resolve({ code, stderr }))
  })
}

// Serial: AVA runs serial tests before the others, whose spawnSync calls would block this
// process's event loop and delay the Ctrl-C past the end of the run.
test.serial(
  'Ctrl-C saves a valid checkpoint and says how to resume; the resumed run ends with the same metrics',
  async (t) => {
    // Epochs long enough (about 0.5 s each here) that the signal lands well before the end.
    const epochs = 5
    const args = [
      '--dataset',
      dataFolder(1024, 16),
      '--model',
      modelFile(4, 16),
      '--batch-size',
      '16',
      '--seed',
      '5',
      '--epochs',
      String(epochs),
    ]
    const dir = join(tmp(), 'run')
    const stopped = await interruptedRun([...args, '--out', dir])
    t.is(stopped.code, 130, stopped.stderr)
    t.regex(
      stopped.stderr,
      new RegExp(
        `interrupted: saved .*last\\.safetensors at epoch \\d+, step \\d+/64\\. Resume with: dualstream train --resume ${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`,
      ),
    )
    t.deepEqual(
      readdirSync(join(dir, 'checkpoints')).sort(),
      ['best.safetensors', 'last.safetensors', 'model.json'],
      'no temporary files left',
    )
    const ckpt = readCheckpoint(join(dir, 'checkpoints', 'last.safetensors'))
    t.true(ckpt.fit!.epoch >= 1 && ckpt.fit!.epoch < epochs, `stopped in epoch ${ckpt.fit!.epoch}`)
    t.is(ckpt.fit!.history.length, ckpt.fit!.epoch)
    t.is(metrics(dir).length, ckpt.fit!.epoch)
    const loaded = await Model.load(join(dir, 'checkpoints', 'last.safetensors'))
    t.is(loaded.heads, 2)
    await loaded.dispose()

    const resumed = run('train', '--resume', dir, '--json')
    t.is(resumed.status, 0, resumed.stderr)
    t.regex(resumed.stderr, /^$/, 'nothing on stderr with --json')
    const uninterrupted = join(tmp(), 'run')
    const whole = run('train', ...args, '--out', uninterrupted, '--quiet')
    t.is(whole.status, 0, whole.stderr)
    t.deepEqual(metrics(dir), metrics(uninterrupted))
    t.is(metrics(dir).length, epochs)
    const finished = run('train', '--resume', dir)
    t.is(finished.status, 2)
    t.regex(finished.stderr, /already finished all 5 epochs/)
  },
)

test('corrupt and mismatched checkpoints fail with the byte offset or the tensor', (t) => {
  const dir = join(tmp(), 'run')
  t.is(run('train', ...quick, '--epochs', '1', '--out', dir, '--quiet').status, 0)
  const last = join(dir, 'checkpoints', 'last.safetensors')
  const cut = join(tmp(), 'cut.safetensors')
  const bytes = readFileSync(last)
  writeFileSync(cut, new Uint8Array(bytes.subarray(0, bytes.length - 100)))
  let r = run('evaluate', cut, '--dataset', data)
  t.is(r.status, 2)
  t.regex(
    r.stderr,
    new RegExp(
      `cut\\.safetensors: at byte offset ${bytes.length - 100}: tensor \\S+: its data runs to byte \\d+ but the file ends at byte ${bytes.length - 100} \\(truncated\\)`,
    ),
  )
  r = run('evaluate', last, '--dataset', data, '--model', modelFile(6))
  t.is(r.status, 2)
  t.regex(r.stderr, /last\.safetensors: tensor layers\.0\.weight: expected shape \[6, 1, 3, 3\], got \[4, 1, 3, 3\]/)
  const empty = join(tmp(), 'empty.safetensors')
  writeFileSync(empty, '')
  r = run('evaluate', empty)
  t.regex(r.stderr, /empty\.safetensors: at byte offset 0: the file ends after 0 bytes/)
  // A copy is still a valid checkpoint: the same accuracy from the file alone.
  const copy = join(tmp(), 'copy.safetensors')
  copyFileSync(last, copy)
  const a = JSON.parse(run('evaluate', copy, '--dataset', data, '--json').stdout)
  const b = JSON.parse(run('evaluate', last, '--dataset', data, '--json').stdout)
  t.deepEqual(a.results, b.results)
})

test('export writes the full-spike model; evaluate, info and plot work on runs and files', (t) => {
  const dir = join(tmp(), 'run')
  t.is(run('train', ...quick, '--epochs', '2', '--out', dir, '--quiet').status, 0)
  const out = join(tmp(), 'fsnn.safetensors')
  let r = run('export', dir, '--out', out, '--json')
  t.is(r.status, 0, r.stderr)
  const ex = JSON.parse(r.stdout)
  t.true(ex.removedAap)
  // This block keeps its width and stride, so its AAP projection is the identity: no weights to drop.
  t.is(ex.parameters, ex.parametersBefore)
  const spec = JSON.parse(readFileSync(out.replace('.safetensors', '.json'), 'utf8'))
  t.false(spec.layers[4].aap)
  t.is(readCheckpoint(out).trainer.length, 0, 'no optimizer state in an export')
  const fromRun = JSON.parse(run('evaluate', dir, '--json', '--mode', 'fsnn').stdout)
  const exported = JSON.parse(run('evaluate', out, '--dataset', data, '--json').stdout)
  t.deepEqual(
    exported.results.map((x: { mode: string }) => x.mode),
    ['fsnn'],
  )
  t.is(exported.results[0].accuracy, fromRun.results[0].accuracy)
  r = run('evaluate', out, '--dataset', data, '--mode', 'dsnn')
  t.is(r.status, 2)
  t.regex(r.stderr, /--mode: dsnn needs a dual-stream model/)

  // energy on the run: both modes, written to the run's energy.json (the full-spike report).
  r = run('energy', dir, '--json')
  t.is(r.status, 0, r.stderr)
  const counted = JSON.parse(r.stdout)
  t.deepEqual(
    counted.reports.map((x: { mode: string }) => x.mode),
    ['fsnn', 'dsnn'],
  )
  const fsnn = counted.reports[0]
  t.is(fsnn.samples, 64)
  // The full-spike network's only MAC is the stem: conv3x3 1->4 over 8x8, the static image counted once.
  t.is(fsnn.totals.mac, 9 * 4 * 8 * 8)
  t.true(fsnn.totals.ac > 0)
  // Keeping the AAP adds the accumulation head (a second FC, on A).
  t.deepEqual(
    counted.reports[1].layers.map((l: { name: string }) => l.name),
    [...fsnn.layers.map((l: { name: string }) => l.name), 'layers.4.head (on the accumulation A)'],
  )
  t.deepEqual(JSON.parse(readFileSync(join(dir, 'energy.json'), 'utf8')), fsnn)
  // The exported full-spike model counts the same operations as the run's fsnn mode.
  const deployed = JSON.parse(run('energy', out, '--dataset', data, '--json').stdout).reports
  t.deepEqual(
    deployed.map((x: { totals: unknown }) => x.totals),
    [fsnn.totals],
  )
  r = run('energy', dir, '--mode', 'fsnn', '--preset', 'int8', '--limit', '16')
  t.is(r.status, 0, r.stderr)
  t.regex(r.stdout, /Energy \(fsnn, 16 samples/)
  t.regex(r.stdout, /layers\.0 +conv2d +static \(once\)/)
  r = run('plot', dir)
  t.is(r.status, 0, r.stderr)
  t.true(
    r.stdout
      .trim()
      .split('\n')
      .some((l) => l.endsWith('energy.svg')),
  )
  t.true(texts(parseXml(readFileSync(join(dir, 'plots', 'energy.svg'), 'utf8'))).includes(fsnn.layers[0].name))
  r = run('info', out, '--json')
  t.is(r.status, 0, r.stderr)
  t.is(JSON.parse(r.stdout).parameterCount, ex.parameters)
})

test('info lists layers, output shapes, parameters and memory per time step', async (t) => {
  const r = run('info', 'dsnn', '--json', '--batch-size', '10')
  t.is(r.status, 0, r.stderr)
  const info = JSON.parse(r.stdout)
  const model = sequential(convDsnn(), { timeSteps: 4, inputShape: [1, 28, 28] })
  t.is(info.parameterCount, model.parameterCount)
  await model.dispose()
  t.deepEqual(
    info.layers.map((l: { outputShape: number[] }) => l.outputShape),
    [[32, 28, 28], [32, 28, 28], [32, 28, 28], [32, 14, 14], [20]],
  )
  // conv, BN and LIF keep 32x28x28 each, the pool 32x14x14, the two heads 10 each.
  t.is(info.activationBytesPerStep, 4 * (3 * 32 * 28 * 28 + 32 * 14 * 14 + 20))
  t.is(info.activationBytesPerStepForBatch, 10 * info.activationBytesPerStep)
  // The training-step prediction per memory mode, for the batch asked for.
  t.deepEqual(
    info.trainingMemory.map((m: { mode: string }) => m.mode),
    ['default', 'recompute'],
  )
  for (const m of info.trainingMemory) {
    t.true(m.bytesPerSample > 0 && m.fixedBytes > 0, JSON.stringify(m))
    t.is(m.bytes, m.fixedBytes + 10 * m.bytesPerSample)
  }
  const text = run('info', 'snn', '--input-shape', '2,16,16', '--classes', '5')
  t.is(text.status, 0, text.stderr)
  t.regex(text.stdout, /input \[2, 16, 16\], T = 4/)
  t.regex(text.stdout, /parameters: [\d,]+/)
  t.regex(text.stdout, /memory per time step/)
  t.regex(text.stdout, /training step, memory recompute: [\d.]+ [KMG]iB predicted peak for a batch of 64/)
})

test('train prints plain progress lines with test metrics when stderr is not a terminal', (t) => {
  const r = run('train', ...quick, '--epochs', '2', '--out', join(tmp(), 'run'))
  t.is(r.status, 0, r.stderr)
  t.regex(
    r.stdout,
    /test accuracy \d+\.\d\d % on 64 .* test images \(full-spike network; \d+\.\d\d % with the AAP kept\) after 2 epoch\(s\)/,
  )
  t.regex(
    r.stderr,
    /epoch 1\/2 +step \d+\/12 \(\d+%\) +[\d.k]+ samples\/s +ETA \S+ +loss \d\.\d{4} +acc [\d.]+% +rate \d\.\d{3}/,
  )
  t.regex(r.stderr, /epoch 2\/2 +loss \S+ +acc \S+ +rate \S+ +test loss \S+ +test acc \S+/)
  t.false(r.stderr.includes('\r'))
})

test('the default train runs the Fashion-MNIST recipe: dsnn3 at T 2 with AdamW, flips and a weight average (short run)', (t) => {
  const dir = join(tmp(), 'run')
  const r = run(
    'train',
    '--limit',
    '1024',
    '--test-limit',
    '2000',
    '--epochs',
    '1',
    '--seed',
    '3',
    '--out',
    dir,
    '--json',
  )
  t.is(r.status, 0, r.stderr)
  const m = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
  t.like(m, {
    type: 'summary',
    dataset: 'fashion-mnist',
    model: 'dsnn3',
    timeSteps: 2,
    batchSize: 128,
    optimizer: 'adamw',
    lr: 4e-3,
    weightDecay: 0.1,
    labelSmoothing: 0.1,
    ema: 0.998,
    augment: 'flip',
    width: 32,
    epochs: 1,
    trainSamples: 1024,
    testSamples: 2000,
    seed: 3,
  })
  // Eight steps move the average (decay 0.998) little from the initial weights, so the figures
  // checked for learning are the trained weights' own, on the training batches.
  t.true(m.trainAccuracy > 0.3 && m.trainAccuracy <= 1, `trainAccuracy ${m.trainAccuracy}`)
  t.true(m.testAccuracy >= 0 && m.testAccuracy <= 1 && m.dsnnTestAccuracy >= 0 && m.dsnnTestAccuracy <= 1)
  const names = m.firingRates.map((f: { name: string }) => f.name)
  t.true(names.includes('layers.2 (lif)') && names.includes('layers.4.stages.2.out'), names.join(', '))
  t.true(m.firingRates.every((f: { rate: number }) => f.rate >= 0 && f.rate <= 1))
  t.true(existsSync(join(dir, 'plots', 'gradient-norms.svg')))
  // --model dsnn leaves the recipe: the two-block network with the plain defaults.
  const plain = summaryOf(
    t,
    run(
      'train',
      '--model',
      'dsnn',
      '--limit',
      '512',
      '--test-limit',
      '500',
      '--epochs',
      '1',
      '--batch-size',
      '32',
      '--out',
      join(tmp(), 'plain'),
      '--json',
    ),
  )
  t.like(plain, { model: 'dsnn', timeSteps: 4, optimizer: 'adam', augment: 'none', labelSmoothing: 0 })
  t.false('ema' in plain)
  t.true(plain.testAccuracy > 0.4 && plain.dsnnTestAccuracy > 0.4, `${plain.testAccuracy} ${plain.dsnnTestAccuracy}`)
})

test('train --model snn trains the plain conv SNN (no AAP) on MNIST', (t) => {
  const flagged = flags({ dataset: 'mnist', model: 'snn', limit: 1024, epochs: 1, 'batch-size': 32 })
  const m = summaryOf(t, run('train', ...flagged, '--out', join(tmp(), 'run'), '--json'))
  t.like(m, { model: 'snn', optimizer: 'sgd', dsnnTestAccuracy: null })
  t.true(m.testAccuracy > 0.4 && m.testAccuracy <= 1, `testAccuracy ${m.testAccuracy}`)
  t.true(m.firingRates.length === 2 && m.firingRates.every((f: { rate: number }) => f.rate > 0 && f.rate < 1))
})

test('unknown flags, bad values and unknown commands are rejected with what is accepted', (t) => {
  const cases: [string[], RegExp][] = [
    [['train', '--epoch', '3'], /Unknown option '--epoch'.*Accepted options: .*--epochs/],
    [['train', '--epochs', '0'], /--epochs: expected an integer >= 1, got "0"/],
    [['train', '--optimizer', 'rmsprop'], /--optimizer: expected one of sgd, adam, adamw/],
    [['train', '--lr', 'fast'], /--lr: expected a number > 0/],
    [['train', '--weight-decay=-1'], /--weight-decay: expected a number >= 0/],
    [['train', '--schedule', 'linear'], /--schedule: expected one of cosine, constant/],
    [
      ['train', '--model', 'resnet', '--dataset', data],
      /--model: expected one of dsnn, dsnn3, snn, dsnn18, .*wideDsnn7b.* or a model JSON file/,
    ],
    [
      ['train', '--dataset', 'cifar'],
      /--dataset: expected fashion-mnist, mnist, n-fashion-mnist or a folder \(train.safetensors \+ test.safetensors, an image folder with train\/ and val\/, or a DVS128 Gesture, CIFAR10-DVS or N-MNIST folder\)/,
    ],
    [['train', '--resume', '/nonexistent-run'], /not a run folder/],
    [
      ['train', '--resume', data, '--epochs', '2'],
      /--resume continues a run with its own config\.json; --epochs cannot be given/,
    ],
    [['evaluate'], /evaluate: expected a checkpoint file or a run folder/],
    [['evaluate', data, '--mode', 'spiky'], /holds no checkpoints|--mode/],
    [['export', data], /--out <file\.safetensors> is required/],
    [['info', 'resnet'], /info: expected one of dsnn, dsnn3, snn, dsnn18, .* or a model JSON file/],
    [['info', 'dsnn', '--input-shape', '1,x'], /--input-shape: expected positive integers/],
    [['plot', data], /not a run folder: no metrics\.jsonl/],
    [['energy'], /energy: expected a checkpoint file or a run folder, or --model/],
    [['energy', '--model', 'dsnn', '--preset', 'fp64'], /--preset: expected one of fp32, fp16, int8/],
    [['energy', '--model', 'dsnn', '--ac-pj', '1'], /--ac-pj and --mac-pj go together/],
    [['fly'], /unknown command "fly"; expected one of: train, evaluate, export, import, info, plot, energy/],
  ]
  const config = join(tmp(), 'bad.json')
  writeFileSync(config, JSON.stringify({ epochs: 2, batchsize: 3 }))
  cases.push([
    ['train', '--config', config],
    /bad\.json: unknown key "batchsize"; accepted keys: dataset, model, epochs, batch-size/,
  ])
  const badValue = join(tmp(), 'bad-value.json')
  writeFileSync(badValue, JSON.stringify({ epochs: -1 }))
  cases.push([['train', '--config', badValue], /bad-value\.json key "epochs": expected an integer >= 1, got "-1"/])
  for (const [args, message] of cases) {
    const r = run(...args)
    t.is(r.status, 2, args.join(' '))
    t.regex(r.stderr, message, args.join(' '))
  }
})

test('--help documents every command and its options', (t) => {
  const top = run('--help')
  t.is(top.status, 0)
  const expected: Record<string, string[]> = {
    train: [
      '--dataset',
      '--model',
      '--epochs',
      '--batch-size',
      '--time-steps',
      '--optimizer',
      '--lr',
      '--weight-decay',
      '--schedule',
      '--seed',
      '--limit',
      '--test-limit',
      '--image-size',
      '--out',
      '--config',
      '--resume',
      '--json',
      '--quiet',
    ],
    evaluate: ['--dataset', '--mode', '--model', '--batch-size', '--limit', '--json'],
    export: ['--out', '--format', '--dt', '--json'],
    import: ['--out', '--format', '--dt', '--time-steps', '--json'],
    info: ['--input-shape', '--classes', '--time-steps', '--batch-size', '--json'],
    plot: ['RUN_DIR'],
    energy: ['--dataset', '--model', '--mode', '--preset', '--ac-pj', '--mac-pj', '--limit', '--json'],
  }
  for (const [command, words] of Object.entries(expected)) {
    t.regex(top.stdout, new RegExp(`^  ${command} `, 'm'))
    const r = run(command, '--help')
    t.is(r.status, 0, command)
    t.regex(r.stdout, new RegExp(`^Usage: dualstream ${command}`))
    for (const w of words) t.true(r.stdout.includes(w), `${command}: ${w}`)
  }
})

test('event data trains from the CLI: an N-MNIST folder and n-fashion-mnist become T frames for a sequence model', async (t) => {
  // An N-MNIST layout written by our own writer: 3 recordings per digit and split, 34 x 34.
  const root = tmp()
  let s = 11
  const rand = () => {
    s = (s * 1103515245 + 12345) % 2147483648
    return s / 2147483648
  }
  for (const split of ['Train', 'Test']) {
    for (let d = 0; d < 10; d++) {
      mkdirSync(join(root, split, String(d)), { recursive: true })
      for (let k = 0; k < 3; k++) {
        const n = 300
        await writeEvents(join(root, split, String(d), `${d}${k}.bin`), {
          width: 34,
          height: 34,
          t: Float64Array.from({ length: n }, (_, i) => 10 * i),
          // Each digit's events fall in its own band of rows, so the classes are learnable.
          x: Uint16Array.from({ length: n }, () => Math.floor(rand() * 34)),
          y: Uint16Array.from({ length: n }, () => 3 * d + Math.floor(rand() * 4)),
          p: Uint8Array.from({ length: n }, () => (rand() < 0.5 ? 1 : 0)),
        })
      }
    }
  }
  const dir = join(tmp(), 'run')
  const flagged = flags({ dataset: root, epochs: 1, 'batch-size': 10, 'time-steps': 3, out: dir })
  const summary = summaryOf(t, run('train', ...flagged, '--json'))
  t.like(summary, { trainSamples: 30, testSamples: 30, timeSteps: 3 })
  const spec = readCheckpoint(join(dir, 'checkpoints', 'last.safetensors')).spec
  t.like(spec, { encoding: 'sequence', timeSteps: 3, inputShape: [2, 34, 34] })
  // evaluate integrates the test recordings with the checkpoint's T.
  const e = run('evaluate', dir, '--json', '--mode', 'fsnn')
  t.is(e.status, 0, e.stderr)
  t.is(JSON.parse(e.stdout).results[0].accuracy, summary.testAccuracy)

  const nfFlags = { limit: 32, 'test-limit': 16, epochs: 1, 'batch-size': 16, 'time-steps': 2 }
  const nf = run('train', '--dataset', 'n-fashion-mnist', ...flags(nfFlags), '--out', join(tmp(), 'nf'), '--json')
  t.like(summaryOf(t, nf), {
    dataset: 'n-fashion-mnist',
    trainSamples: 32,
    testSamples: 16,
    timeSteps: 2,
  })
  const empty = tmp()
  const bad = run('train', '--dataset', empty)
  t.is(bad.status, 2)
  t.regex(
    bad.stderr,
    /holds neither train\.safetensors \+ test\.safetensors, an image folder \(train\/ and val\/.*\) nor a DVS128 Gesture/,
  )
})
