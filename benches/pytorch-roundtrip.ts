// The PyTorch round trip: export a small DSNN with `dualstream export --format pytorch`, train
// it one epoch on Fashion-MNIST with `torchrun --nproc_per_node=2` (CPU, gloo) on the exported
// train.py, import the result, and check that `dualstream evaluate` gives the accuracy torch
// reported (within 0.1 point) and that `energy` and `export` (full-spike, audited) work on it.
// Records benches/results/pytorch-roundtrip.jsonl.
//
//   DUALSTREAM_PYTHON=/path/to/venv/bin/python npx tsx benches/pytorch-roundtrip.ts [--epochs 1]
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { convDsnn, loadFashionMnist, Model, schedules, sgd, writeSafetensors } from '../ts'
import { record } from './record'

const root = join(__dirname, '..')
const python = process.env.DUALSTREAM_PYTHON ?? join(root, '.venv-interop', 'bin', 'python')
const epochsAt = process.argv.indexOf('--epochs')
const epochs = epochsAt >= 0 ? Number(process.argv[epochsAt + 1]) : 1
const cli = (args: string[]): string =>
  execFileSync(process.execPath, ['--import=tsx', join(root, 'ts', 'cli.ts'), ...args], {
    encoding: 'utf8',
    maxBuffer: 64 << 20,
  })

async function main(): Promise<void> {
  const work = mkdtempSync(join(tmpdir(), 'dualstream-roundtrip-'))
  const started = performance.now()

  // 1. A small DSNN (conv-BN-LIF-pool, two dual-stream blocks, flatten head), saved with its
  //    training configuration, then exported through the CLI.
  const layers = convDsnn({ width: 8 })
  const model = new Model(layers, { timeSteps: 2, inputShape: [1, 28, 28], seed: 1 })
  model.configureTraining(sgd({ lr: 0.05, momentum: 0.9 }), schedules.constant())
  const initial = join(work, 'initial.safetensors')
  await model.save(initial)
  await model.dispose()
  const exported = join(work, 'export')
  cli(['export', initial, '--format', 'pytorch', '--out', exported])

  // 2. Fashion-MNIST as the arrays dualstream trains on.
  const data = loadFashionMnist()
  const asFile = (d: typeof data.train, path: string) =>
    writeSafetensors(path, [
      { name: 'x', shape: [d.length, ...d.sampleShape], data: d.images },
      { name: 'y', shape: [d.length], data: Float32Array.from(d.labels) },
    ])
  asFile(data.train, join(work, 'train.safetensors'))
  asFile(data.test, join(work, 'test.safetensors'))

  // 3. torchrun, two processes on the CPU (gloo).
  const run = join(work, 'run')
  const torchArgs = [
    '-m',
    'torch.distributed.run',
    '--nproc_per_node=2',
    join(exported, 'train.py'),
    '--train',
    join(work, 'train.safetensors'),
    '--val',
    join(work, 'test.safetensors'),
    '--epochs',
    String(epochs),
    '--batch-size',
    '32',
    '--device',
    'cpu',
    '--out',
    run,
  ]
  const torchStarted = performance.now()
  execFileSync(python, torchArgs, {
    stdio: ['ignore', 'inherit', 'inherit'],
    env: { ...process.env, OMP_NUM_THREADS: '1', PATH: `${dirname(python)}:${process.env.PATH}` },
  })
  const torchSeconds = (performance.now() - torchStarted) / 1000
  const rows = readFileSync(join(run, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  const torchRow = rows.at(-1)

  // 4. Back: import, evaluate, energy, export the full-spike network and audit it.
  const imported = join(work, 'imported.safetensors')
  cli([
    'import',
    join(run, 'last.safetensors'),
    '--model',
    join(exported, 'spec.json'),
    '--from',
    'dualstream-export',
    '--out',
    imported,
  ])
  const evaluation = JSON.parse(cli(['evaluate', imported, '--dataset', 'fashion-mnist', '--mode', 'both', '--json']))
  const ours = Object.fromEntries(
    evaluation.results.map((r: { mode: string; accuracy: number }) => [r.mode, r.accuracy]),
  )
  const energy = JSON.parse(cli(['energy', imported, '--dataset', 'fashion-mnist', '--limit', '1000', '--json']))
  const deploy = join(work, 'deploy.safetensors')
  cli(['export', imported, '--out', deploy])
  const fsnn = await Model.load(deploy)
  const n = 256
  const audit = await fsnn.audit(data.test.images.subarray(0, n * 784), n)
  await fsnn.dispose()

  const gap = {
    fsnn: Math.abs(ours.fsnn - torchRow.validation.fsnn) * 100,
    dsnn: Math.abs(ours.dsnn - torchRow.validation.dsnn) * 100,
  }
  const passed = gap.fsnn <= 0.1 && gap.dsnn <= 0.1 && audit.passed
  record(
    'pytorch-roundtrip',
    `python -m torch.distributed.run ${torchArgs.slice(2).join(' ').replaceAll(work, '$WORK')}`,
    {
      model: 'convDsnn width 8, T 2, LIF, SGD lr 0.05 momentum 0.9, batch 32 per process',
      processes: 2,
      epochs,
      torch: { metrics: torchRow, seconds: torchSeconds },
      dualstream: { accuracy: ours, energy: energy.reports ?? energy },
      accuracyGapPoints: gap,
      audit: { passed: audit.passed, samples: n },
      passed,
      wallSeconds: (performance.now() - started) / 1000,
    },
  )
  if (!passed) process.exitCode = 1
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
