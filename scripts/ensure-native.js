#!/usr/bin/env node
// Runs at `npm install`. A prebuilt binary (platform package or a local build) wins; without
// one, build the addon from the bundled Rust sources when cargo is available.

const { existsSync } = require('node:fs')
const { join } = require('node:path')
const { spawnSync } = require('node:child_process')

const root = join(__dirname, '..')

function loads() {
  try {
    require(join(root, 'native.js'))
    return true
  } catch {
    return false
  }
}

if (process.env.DUALSTREAM_SKIP_NATIVE_BUILD) process.exit(0)
if (loads() && !existsSync(join(root, 'crates', 'node', 'src'))) process.exit(0)

const hasSources = existsSync(join(root, 'crates', 'node', 'Cargo.toml'))
const cargo = spawnSync('cargo', ['--version'], { stdio: 'ignore' })
if (!hasSources || cargo.status !== 0) {
  if (loads()) process.exit(0)
  console.warn(
    'dualstream: no prebuilt binary for ' +
      process.platform +
      '-' +
      process.arch +
      ' and no Rust toolchain (cargo) on PATH to build one. Install Rust from https://rustup.rs and run `npm rebuild dualstream`.',
  )
  process.exit(0)
}

// In a source checkout always rebuild: cargo makes this a no-op when nothing changed.
const localCli = join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js')
const napiCli = existsSync(localCli) ? localCli : null
const args = [
  'build',
  '--platform',
  '--release',
  '--manifest-path',
  'crates/node/Cargo.toml',
  '--package-json-path',
  'package.json',
  '--output-dir',
  '.',
  '--js',
  'native.js',
  '--dts',
  'native.d.ts',
]
const result = napiCli
  ? spawnSync(process.execPath, [napiCli, ...args], { cwd: root, stdio: 'inherit' })
  : spawnSync('npx', ['--yes', '@napi-rs/cli@3', ...args], {
      cwd: root,
      stdio: 'inherit',
      shell: process.platform === 'win32',
    })
if (result.status !== 0) {
  console.error('dualstream: building the native addon failed (see the cargo output above).')
  process.exit(result.status ?? 1)
}
