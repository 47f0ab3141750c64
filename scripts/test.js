#!/usr/bin/env node
// `npm test`: the Rust tests (scripts/test-rust.js), the TypeScript build, the typecheck of the
// API, specs and benches, and the ava specs. Compiling the Rust tests (the two crates'
// integration binaries, linked against the addon build's libraries) runs alongside the
// TypeScript steps and the specs, which need only the addon and dist/; its output is held back
// and printed if the build fails. The Rust tests run when both are done. The exit code is
// non-zero if any step failed.

const { spawn } = require('node:child_process')
const path = require('node:path')

const root = path.join(__dirname, '..')
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const testRust = path.join(__dirname, 'test-rust.js')
// tsc and ava run with this node directly: `npx` would start another npm first (about half a
// CPU second).
const tsc = require.resolve('typescript/bin/tsc')
const ava = path.join(path.dirname(require.resolve('ava')), 'cli.mjs')

function run(command, args, options = {}) {
  return new Promise((resolve) => {
    const shell = process.platform === 'win32' && command !== process.execPath
    const child = spawn(command, args, { cwd: root, stdio: 'inherit', shell, ...options })
    let output = ''
    if (options.stdio === 'pipe') {
      child.stdout.on('data', (chunk) => {
        output += chunk
      })
      child.stderr.on('data', (chunk) => {
        output += chunk
      })
    }
    child.on('error', (error) => resolve({ code: 1, output: `${output}${error.message}\n` }))
    child.on('close', (code) => resolve({ code: code ?? 1, output }))
  })
}

async function typescriptAndSpecs() {
  // The TypeScript build is incremental (tsconfig.json): after `npm install` built dist/, it
  // only checks that nothing changed.
  const steps = [
    ['build:ts', npm, ['run', 'build:ts']],
    ['the typecheck', process.execPath, [tsc, '-p', 'tsconfig.check.json']],
    ['ava', process.execPath, [ava]],
  ]
  for (const [name, command, args] of steps) {
    const { code } = await run(command, args)
    if (code !== 0) return `${name} exited with ${code}`
  }
  return undefined
}

async function main() {
  const rustBuild = run(process.execPath, [testRust, '--no-run'], { stdio: 'pipe' })
  const failures = []
  const specs = await typescriptAndSpecs()
  if (specs) failures.push(specs)
  const build = await rustBuild
  if (build.code !== 0) {
    process.stderr.write(build.output)
    failures.push(`the Rust test build exited with ${build.code}`)
  } else {
    const rust = await run(process.execPath, [testRust])
    if (rust.code !== 0) failures.push(`the Rust tests exited with ${rust.code}`)
  }
  for (const failure of failures) console.error(`npm test: ${failure}`)
  process.exit(failures.length === 0 ? 0 : 1)
}

main()
