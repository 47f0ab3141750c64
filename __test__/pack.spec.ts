import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import test from 'ava'

// The prebuilt-binary path end to end: npm pack of the main and the linux-x64-gnu platform
// package, installed into an empty folder with no Rust toolchain on PATH, trains one step.
test('packed tarballs install without Rust and train a step', (t) => {
  if (process.platform !== 'linux' || process.arch !== 'x64')
    return t.pass('the platform package built here is linux-x64-gnu')
  const r = spawnSync('bash', [join(__dirname, '..', 'scripts', 'pack-check.sh')], {
    encoding: 'utf8',
    timeout: 600_000,
  })
  t.is(r.status, 0, r.stdout + r.stderr)
  t.regex(r.stdout, /packed dualstream-0\.1\.0\.tgz .* and dualstream-linux-x64-gnu-0\.1\.0\.tgz/)
  t.regex(r.stdout, /trained one step from the packed tarballs: loss \d+\.\d+, engine 0\.1\.0/)
})
