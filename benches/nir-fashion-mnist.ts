// A NIR-ready small DSNN (convDsnn with pool 'avg') trained briefly with DST on Fashion-MNIST,
// exported as NIR, and run outside dualstream by two simulators: the numpy NIR interpreter
// (scripts/nir/nir_numpy.py, written from the NIR primitives' equations) and the nirtorch graph
// executor with SpikingJelly modules (scripts/nir/nirtorch_sim.py). Each one's test accuracy
// must equal dualstream's fsnn accuracy, and the predictions must agree sample by sample.
//   npm run bench:nir [-- --epochs 1 --width 32] [--outside numpy,nirtorch]
//   npm run bench:nir -- --from DIR [--outside nirtorch]
// (needs the Python interop environment). --from DIR reuses a directory this bench wrote
// (fsnn.nir, images.f32, labels.u8) instead of training: dualstream's side is then the
// exported FSNN read back with Model.fromNir (bit-identical to the exported network).
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { adam, convDsnn, loadFashionMnist, Model } from '../ts/index'
import { record } from './record'

function flag(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? fallback : Number(process.argv[i + 1])
}

function option(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`)
  return i < 0 ? undefined : process.argv[i + 1]
}

const scripts = join(__dirname, '..', 'scripts', 'nir')

/** The outside simulators: name in the record, and the script arguments after the shared ones. */
const simulators: Record<
  string,
  { name: string; args: (file: string, dir: string, n: number, T: number) => string[] }
> = {
  numpy: {
    name: 'scripts/nir/nir_numpy.py (numpy, float64)',
    args: (file, dir, n, T) => [
      join(scripts, 'accuracy.py'),
      file,
      join(dir, 'images.f32'),
      join(dir, 'labels.u8'),
      String(n),
      String(T),
      '1',
      '28',
      '28',
    ],
  },
  nirtorch: {
    name: 'scripts/nir/nirtorch_sim.py (nirtorch 2.6 nir_to_torch executor, SpikingJelly 2.0.0 modules, float32)',
    args: (file, dir, n, T) => [
      join(scripts, 'nirtorch_sim.py'),
      file,
      join(dir, 'images.f32'),
      String(n),
      String(T),
      '1',
      '28',
      '28',
      '--labels',
      join(dir, 'labels.u8'),
    ],
  },
}

function argmaxRows(logits: Float32Array, n: number): number[] {
  const k = logits.length / n
  return Array.from({ length: n }, (_, i) => {
    const row = logits.subarray(i * k, i * k + k)
    return row.indexOf(Math.max(...row))
  })
}

async function main() {
  const epochs = flag('epochs', 1)
  const width = flag('width', 32)
  const from = option('from')
  const outside = (option('outside') ?? 'numpy,nirtorch').split(',')
  for (const o of outside) if (!simulators[o]) throw new Error(`--outside: unknown simulator ${o}`)
  const timeSteps = 4
  const python = process.env.DUALSTREAM_PYTHON ?? join(__dirname, '..', '.venv-interop', 'bin', 'python')

  let dir: string
  let figures: Record<string, unknown>
  let ours: number[]
  let fsnnAccuracy: number
  let command: string
  let count: number
  if (from) {
    dir = from
    const labels = new Uint8Array(readFileSync(join(dir, 'labels.u8')))
    count = labels.length
    const images = new Float32Array(new Uint8Array(readFileSync(join(dir, 'images.f32'))).buffer)
    const model = await Model.fromNir(join(dir, 'fsnn.nir'), { timeSteps })
    ours = argmaxRows(await model.predict(images, count, 'fsnn'), count)
    fsnnAccuracy = ours.filter((p, i) => p === labels[i]).length / count
    command = `npm run bench:nir -- --from ${from} --outside ${outside.join(',')}`
    figures = { model: `Model.fromNir(${join(dir, 'fsnn.nir')})`, timeSteps, fsnnAccuracy }
  } else {
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

    dir = mkdtempSync(join(tmpdir(), 'dualstream-nir-bench-'))
    const exported = await model.toNir(join(dir, 'fsnn.nir'))
    count = test.length
    const images = new Float32Array(count * 784)
    const labels = new Uint8Array(count)
    let at = 0
    for (const b of test.batches(1000, { shuffle: false })) {
      images.set(b.x, at * 784)
      labels.set(b.y, at)
      at += b.size
    }
    writeFileSync(join(dir, 'images.f32'), images)
    writeFileSync(join(dir, 'labels.u8'), labels)
    // dualstream's own predictions of the same samples, to compare one by one.
    ours = argmaxRows(await model.predict(images, count, 'fsnn'), count)
    fsnnAccuracy = fsnn.accuracy
    command = `npm run bench:nir -- --epochs ${epochs} --width ${width}`
    figures = {
      model: `convDsnn({ width: ${width}, pool: 'avg' })`,
      epochs,
      timeSteps,
      trainSeconds: fit.seconds,
      fsnnAccuracy,
      dsnnAccuracy: dsnn.accuracy,
      nirNodes: exported.nodes,
    }
  }

  const file = join(dir, 'fsnn.nir')
  for (const o of outside) {
    const started = performance.now()
    const r = spawnSync(python, simulators[o].args(file, dir, count, timeSteps), {
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    })
    if (r.status !== 0) throw new Error(`${simulators[o].name} failed: ${r.stderr}`)
    const result = JSON.parse(r.stdout) as { accuracy: number; predictions: number[] }
    const agree = result.predictions.filter((p, i) => p === ours[i]).length
    record('nir-fashion-mnist', command, {
      ...figures,
      outsideSimulator: simulators[o].name,
      outsideAccuracy: result.accuracy,
      outsideSeconds: (performance.now() - started) / 1000,
      predictionsAgree: agree,
      count,
      equal: result.accuracy === fsnnAccuracy && agree === count,
    })
  }
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
