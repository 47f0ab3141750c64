#!/usr/bin/env node
// The Rust tests of `npm test`: the library and integration tests of dualstream-core and
// dualstream-data (`--tests`), without the benchmark examples, in the `release-tests` profile
// (Cargo.toml: optimised, no LTO; built into target/<host triple>/release-tests). The binding's
// package is selected too (it has no Rust tests) so that the dependencies are resolved with the
// same features as for the addon. Extra arguments go to `cargo test` (a name filter,
// `--no-run`, `-- --ignored`).

const { spawnSync } = require('node:child_process')

const rustc = spawnSync('rustc', ['-vV'], { encoding: 'utf8' })
const host = rustc.status === 0 ? /^host: (\S+)$/m.exec(rustc.stdout)?.[1] : undefined
const packages = ['-p', 'dualstream-core', '-p', 'dualstream-data', '-p', 'dualstream-node']
const args = ['test', '--profile', 'release-tests', ...packages, '--tests']
if (host) args.push('--target', host)
const cargo = spawnSync('cargo', [...args, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(cargo.status ?? 1)
