#!/usr/bin/env node
// Fails when a crate's library sources hold tests. The libraries are built with `test = false`
// (crates/*/Cargo.toml) so that `cargo test` links the addon build's library instead of
// compiling it again with cfg(test); a `#[cfg(test)]` module or a `#[test]` function under
// crates/*/src would therefore never run. Tests belong in the crate's integration binary,
// `tests/integration/` (module tests under `tests/integration/unit/`).
//
// Usage: node scripts/check-test-placement.js     (exits 1 and lists the places found)

const fs = require('node:fs')
const path = require('node:path')

const crates = path.join(__dirname, '..', 'crates')

/** The `.rs` files under `dir`, recursively. */
function rustFiles(dir) {
  const files = []
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const file = path.join(dir, entry.name)
    if (entry.isDirectory()) files.push(...rustFiles(file))
    else if (entry.name.endsWith('.rs')) files.push(file)
  }
  return files
}

const found = []
for (const crate of fs.readdirSync(crates)) {
  const src = path.join(crates, crate, 'src')
  if (!fs.existsSync(src)) continue
  for (const file of rustFiles(src)) {
    const lines = fs.readFileSync(file, 'utf8').split('\n')
    lines.forEach((line, i) => {
      const code = line.replace(/\/\/.*$/, '')
      if (/#\[\s*cfg\s*\([^\]]*\btest\b/.test(code) || /#\[\s*test\s*\]/.test(code))
        found.push(`${path.relative(path.join(__dirname, '..'), file)}:${i + 1}: ${line.trim()}`)
    })
  }
}

if (found.length > 0) {
  console.error(
    "Tests in library sources never run (the libraries are built with `test = false`); move them to the crate's tests/integration/:",
  )
  for (const place of found) console.error(`  ${place}`)
  process.exit(1)
}
