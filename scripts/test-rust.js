#!/usr/bin/env node
// The Rust tests of `npm test`: the library and integration tests of dualstream-core and
// dualstream-data (`--tests`, without the benchmark examples), built in the `test-release`
// profile (Cargo.toml: release semantics, no LTO, opt-level 1) into target/test-release.

const { spawnSync } = require('node:child_process')

const packages = ['-p', 'dualstream-core', '-p', 'dualstream-data']
const args = ['test', '--profile', 'test-release', ...packages, '--tests']
const cargo = spawnSync('cargo', [...args, ...process.argv.slice(2)], { stdio: 'inherit' })
process.exit(cargo.status ?? 1)
