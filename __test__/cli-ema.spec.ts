// dualstream train --ema: the option, its config key, and a run whose checkpoints hold the average.
import { mkdtempSync, readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { resolveConfig } from '../ts/cli/train'
import { readCheckpoint } from '../ts/index'
import { run, summaryOf } from './cli-run'

test('--ema: absent unless given or a dataset recipe sets it, a number in [0, 1); --ema-buffers only with it', (t) => {
  t.is(resolveConfig({ model: 'dsnn' }).ema, undefined)
  t.is(resolveConfig({}).ema, 0.998)
  t.is(resolveConfig({ ema: '0.999' }).ema, 0.999)
  t.is(resolveConfig({}, { path: 'c.json', values: { ema: 0.99, 'ema-buffers': 'trained' } })['ema-buffers'], 'trained')
  for (const bad of ['1', '-0.1', 'x', '']) {
    t.throws(() => resolveConfig({ ema: bad }), { message: /--ema: expected a number/ })
  }
  t.throws(() => resolveConfig({}, { path: 'c.json', values: { ema: 2 } }), { message: /c\.json key "ema": expected/ })
  t.throws(() => resolveConfig({ ema: '0.9', 'ema-buffers': 'some' }), { message: /--ema-buffers: expected one of/ })
  t.throws(() => resolveConfig({ model: 'dsnn', 'ema-buffers': 'trained' }), { message: /--ema-buffers: .*give --ema/ })
})

test('train --ema saves the average as the model and the trained weights aside', (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'dualstream-ema-')), 'run')
  const args = [
    '--dataset',
    'mnist',
    '--model',
    'dsnn',
    '--limit',
    '256',
    '--test-limit',
    '128',
    '--epochs',
    '2',
    '--width',
    '4',
  ]
  const summary = summaryOf(t, run('train', ...args, '--ema', '0.9', '--out', dir, '--json'))
  t.is(summary.ema, 0.9)
  t.is(summary.emaBuffers, 'trained')
  t.is(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).ema, 0.9)
  const rows = readFileSync(join(dir, 'metrics.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l))
  t.true(rows.every((r) => r.weights === 'average'))
  const ckpt = readCheckpoint(join(dir, 'checkpoints', 'last.safetensors'))
  t.deepEqual(ckpt.training?.ema, { decay: 0.9, buffers: false })
  const slots = new Map(ckpt.trainer.filter((x) => x.name.startsWith('ema/slot/')).map((x) => [x.name.slice(9), x]))
  const weight = ckpt.tensors.find((x) => x.name === 'layers.0.weight')!
  t.notDeepEqual(
    weight.data,
    slots.get('layers.0.weight')!.data,
    'the model holds the average, not the trained weights',
  )
  t.deepEqual(ckpt.trainer.find((x) => x.name === 'ema/shown')?.data, new Float32Array([1]))
  // Without --ema nothing of the average appears.
  const plainDir = join(mkdtempSync(join(tmpdir(), 'dualstream-ema-')), 'run')
  const plain = summaryOf(t, run('train', ...args, '--out', plainDir, '--json'))
  t.false('ema' in plain)
  t.false('ema' in JSON.parse(readFileSync(join(plainDir, 'config.json'), 'utf8')))
  t.false(
    readCheckpoint(join(plainDir, 'checkpoints', 'last.safetensors')).trainer.some((x) => x.name.startsWith('ema/')),
  )
})
