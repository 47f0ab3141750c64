// A NIR-ready small DSNN (convDsnn with pool 'avg') trained briefly with DST on Fashion-MNIST,
// exported as NIR, and run outside dualstream by the numpy NIR interpreter
// (scripts/nir/nir_numpy.py, written from the NIR primitives' equations): its test accuracy
// must equal dualstream's fsnn accuracy, and the predictions must agree sample by sample.
//   npm run bench:nir [-- --epochs 1 --width 32]     (needs the Python interop environment)
import { spawnSync } from 'node:child_process'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Model, adam, convDsnn, loadFashionMnist } from '../ts/index'
import { record } from './record'

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}

async function main() {
  const epochs = flag('epochs', 1)
  const width = flag('width', 32)
  const timeSteps = 4
  const python = process.env.DUALSTREAM_PYTHON ?? join(__dirname, '..', '.venv-interop', 'bin', 'python')
  const { train, test } = loadFashionMnist()
  const model = new Model(convDsnn({ width, pool: 'avg' }), { timeSteps, inputShape: [1, 28, 28], seed: 0 })
  const fit = await model.fit(train, {
    epochs,
    batchSize: 64,
    optimizer: adam({ lr: 0.002 }),
    schedule: 'cosine',
  })
  const fsnn = await model.evaluate(test, { mode: 'fsnn' })
  const dsnn = await model.evaluate(test, { mode: 'dsnn' })

  const dir = mkdtempSync(join(tmpdir(), 'dualstream-nir-bench-'))
  const file = join(dir, 'fsnn.nir')
  const exported = await model.toNir(file)
  const images = new Float32Array(test.length * 784)
  const labels = new Uint8Array(test.length)
  let at = 0
  for (const b of test.batches(1000, { shuffle: false })) {
    images.set(b.x, at * 784)
    labels.set(b.y, at)
    at += b.size
  }
  writeFileSync(join(dir, 'images.f32'), images)
  writeFileSync(join(dir, 'labels.u8'), labels)
  // dualstream's own predictions of the same samples, to compare one by one.
  const logits = await model.predict(images, test.length, 'fsnn')
  const ours = Array.from({ length: test.length }, (_, i) => {
    const row = logits.subarray(i * 10, i * 10 + 10)
    return row.indexOf(Math.max(...row))
  })
  const started = performance.now()
  const r = spawnSync(
    python,
    [
      join(__dirname, '..', 'scripts', 'nir', 'accuracy.py'),
      file,
      join(dir, 'images.f32'),
      join(dir, 'labels.u8'),
      String(test.length),
      String(timeSteps),
      '1',
      '28',
      '28',
    ],
    { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
  )
  if (r.status !== 0) throw new Error(`accuracy.py failed: ${r.stderr}`)
  const outside = JSON.parse(r.stdout) as { accuracy: number; predictions: number[] }
  const agree = outside.predictions.filter((p, i) => p === ours[i]).length
  record('nir-fashion-mnist', `npm run bench:nir -- --epochs ${epochs} --width ${width}`, {
    model: `convDsnn({ width: ${width}, pool: 'avg' })`,
    epochs,
    timeSteps,
    trainSeconds: fit.seconds,
    fsnnAccuracy: fsnn.accuracy,
    dsnnAccuracy: dsnn.accuracy,
    nirNodes: exported.nodes,
    outsideSimulator: 'scripts/nir/nir_numpy.py (numpy, float64)',
    outsideAccuracy: outside.accuracy,
    outsideSeconds: (performance.now() - started) / 1000,
    predictionsAgree: agree,
    count: test.length,
    equal: outside.accuracy === fsnn.accuracy && agree === test.length,
  })
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
