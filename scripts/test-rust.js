#!/usr/bin/env node
// The Rust tests of `npm test`: the integration binaries of dualstream-core and dualstream-data
// (`--tests`; the libraries have no unit-test harness, `test = false`), without the benchmark
// examples. They link the addon's release build of both libraries: napi-rs builds with an
// explicit `--target` (into target/<host triple>/release), so the tests name the same target,
// and the binding's package is selected too (it has no Rust tests) so that the dependencies are
// built with the same features. The release profile has no cross-crate LTO, so the libraries
// hold object code the test binaries link as they are.

const { spawnSync } = require('node:child_process')

const rustc = spawnSync('rustc', ['-vV'], { encoding: 'utf8' })
const host = rustc.status === 0 ? /^host: (\S+)$/m.exec(rustc.stdout)?.[1] : undefined
const packages = ['-p', 'dualstream-core', '-p', 'dualstream-data', '-p', 'dualstream-node']
const args = ['test', '--release', ...packages, '--tests']
if (host) args.push('--target', host)
const cargo = spawnSync('cargo', [...args, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(cargo.status ?? 1)
