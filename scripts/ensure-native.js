#!/usr/bin/env node
// Runs at `npm install`. A prebuilt binary (platform package or a local build) wins; without
// one, build the addon from the bundled Rust sources when cargo is available.

const { existsSync, readdirSync, statSync } = require('node:fs')
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

// The newest modification time (ms) of the files under `dir` whose names pass `keep`.
function newestMtime(dir, keep) {
  let newest = 0
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) newest = Math.max(newest, newestMtime(path, keep))
    else if (keep(entry.name)) newest = Math.max(newest, statSync(path).mtimeMs)
  }
  return newest
}

// A `dualstream.<platform>.node` in the package root, built after the last change to the Rust
// sources, manifests and lock file of the crates the addon links.
function localAddonIsCurrent() {
  const addons = readdirSync(root).filter((name) => /^dualstream\..+\.node$/.test(name))
  if (addons.length === 0) return false
  const built = Math.max(...addons.map((name) => statSync(join(root, name)).mtimeMs))
  const files = ['Cargo.toml', 'Cargo.lock']
  for (const crate of ['core', 'data', 'node'])
    files.push(...['Cargo.toml', 'build.rs'].map((name) => join('crates', crate, name)))
  let inputs = 0
  for (const file of files.map((name) => join(root, name)))
    if (existsSync(file)) inputs = Math.max(inputs, statSync(file).mtimeMs)
  for (const crate of ['core', 'data', 'node'])
    inputs = Math.max(
      inputs,
      newestMtime(join(root, 'crates', crate, 'src'), (name) => name.endsWith('.rs')),
    )
  return built > inputs
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

// In a source checkout, build unless the local addon is newer than every Rust input. Leaving it
// to cargo is not a no-op: napi-rs sets NAPI_FORCE_BUILD_<crate> on a build that has no cached
// type definitions and not on the next one, so the next one reruns the binding's build script
// and relinks the addon (minutes). `npx dualstream` inside the checkout runs this script too
// (npm installs the checkout into its npx cache).
if (loads() && localAddonIsCurrent()) process.exit(0)

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
