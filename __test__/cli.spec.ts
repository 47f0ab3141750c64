import test from 'ava'
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

const cli = join(__dirname, '..', 'dist', 'cli.js')
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 })

test('train --json runs a short real training and prints the final metrics as one JSON line', (t) => {
  const r = run('train', '--limit', '1024', '--epochs', '1', '--batch-size', '32', '--seed', '3', '--json')
  t.is(r.status, 0, r.stderr)
  const lines = r.stdout.trim().split('\n')
  t.is(lines.length, 1)
  const m = JSON.parse(lines[0])
  t.is(m.dataset, 'fashion-mnist')
  t.is(m.epochs, 1)
  t.is(m.trainSamples, 1024)
  t.is(m.seed, 3)
  t.true(m.seconds > 0)
  // 10 classes: chance is 10 %; even 32 steps on real images must do far better.
  t.true(m.testAccuracy > 0.4 && m.testAccuracy <= 1, `testAccuracy ${m.testAccuracy}`)
  // The default model is a DSNN: testAccuracy is its full-spike network's, the DSNN's is beside it.
  t.is(m.model, 'dsnn')
  t.is(m.optimizer, 'adam')
  t.true(m.dsnnTestAccuracy > 0.4 && m.dsnnTestAccuracy <= 1, `dsnnTestAccuracy ${m.dsnnTestAccuracy}`)
  const names = m.firingRates.map((f: { name: string }) => f.name)
  t.true(names.includes('layers.2 (lif)') && names.includes('layers.4.stages.2.out'), names.join(', '))
  // A zero-initialised branch's last neuron may still be silent after a few steps: rates lie in [0, 1].
  t.true(m.firingRates.every((f: { rate: number }) => f.rate >= 0 && f.rate <= 1))
  t.true(m.firingRates.find((f: { name: string }) => f.name === 'layers.4.stages.2.out').rate > 0)
})

test('train --model snn trains the plain conv SNN (no AAP)', (t) => {
  const r = run('train', '--model', 'snn', '--limit', '1024', '--epochs', '1', '--batch-size', '32', '--json')
  t.is(r.status, 0, r.stderr)
  const m = JSON.parse(r.stdout.trim())
  t.is(m.model, 'snn')
  t.is(m.optimizer, 'sgd')
  t.is(m.dsnnTestAccuracy, null)
  t.true(m.testAccuracy > 0.4 && m.testAccuracy <= 1, `testAccuracy ${m.testAccuracy}`)
  t.true(m.firingRates.length === 2 && m.firingRates.every((f: { rate: number }) => f.rate > 0 && f.rate < 1))
})

test('train prints plain progress lines when stderr is not a terminal', (t) => {
  const r = run('train', '--dataset', 'mnist', '--model', 'snn', '--limit', '512', '--epochs', '2', '--batch-size', '64')
  t.is(r.status, 0, r.stderr)
  t.regex(r.stdout, /test accuracy \d+\.\d\d % on 2000 mnist test images after 2 epoch\(s\)/)
  t.regex(r.stderr, /epoch 2\/2/)
  t.false(r.stderr.includes('\r'))
})

test('unknown flags, bad values and unknown commands are rejected with what is accepted', (t) => {
  let r = run('train', '--epoch', '3')
  t.is(r.status, 2)
  t.regex(r.stderr, /--epoch/)
  r = run('train', '--epochs', '0')
  t.is(r.status, 2)
  t.regex(r.stderr, /--epochs: expected an integer >= 1, got "0"/)
  r = run('train', '--optimizer', 'rmsprop')
  t.is(r.status, 2)
  t.regex(r.stderr, /--optimizer: expected one of sgd, adam, adamw/)
  r = run('train', '--lr', 'fast')
  t.is(r.status, 2)
  t.regex(r.stderr, /--lr: expected a number > 0/)
  r = run('train', '--model', 'resnet')
  t.is(r.status, 2)
  t.regex(r.stderr, /--model: expected one of dsnn, snn/)
  r = run('fly')
  t.is(r.status, 2)
  t.regex(r.stderr, /unknown command "fly"/)
})

test('--help documents every command', (t) => {
  let r = run('--help')
  t.is(r.status, 0)
  t.regex(r.stdout, /train/)
  r = run('train', '--help')
  t.is(r.status, 0)
  for (const flag of ['--dataset', '--model', '--epochs', '--batch-size', '--time-steps', '--optimizer', '--lr', '--schedule', '--seed', '--limit', '--json']) {
    t.true(r.stdout.includes(flag), flag)
  }
})
