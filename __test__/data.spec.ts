import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import test from 'ava'
import {
  FASHION_MNIST_CLASSES,
  type FashionMnist,
  loadFashionMnist,
  loadMnist,
  type Mnist,
  mnistTestCount,
  TensorDataset,
  type TensorDatasetOptions,
} from '../ts/data'
import { deriveSeed, permutation, Rng } from '../ts/data/random'
import { DualstreamError } from '../ts/errors'

// Loading is the slow part (~5 s); every test in this file shares one load of each dataset.
let fashion: FashionMnist | undefined
function getFashion(): FashionMnist {
  fashion ??= loadFashionMnist()
  return fashion
}
let mnist: Mnist | undefined
function getMnist(): Mnist {
  mnist ??= loadMnist()
  return mnist
}

// Read independently of the loader so a bug in its path handling or parsing cannot hide.
function rawFashionClass(c: number): unknown[] {
  const dir = join(dirname(require.resolve('fashion-mnist/package.json')), 'src', 'clothes')
  return (JSON.parse(readFileSync(join(dir, `${c}.json`), 'utf8')) as { data: unknown[] }).data
}

function scaled(record: number[]): Float32Array {
  return Float32Array.from(record, (v) => v / 255)
}

function small(n = 10, sampleShape = [2, 3]): TensorDataset {
  const size = sampleShape.reduce((a, b) => a * b, 1)
  // Every value encodes its sample index, so a batch row can be traced back to its source.
  const images = Float32Array.from({ length: n * size }, (_, i) => Math.floor(i / size) + (i % size) / 100)
  const labels = Uint8Array.from({ length: n }, (_, i) => i % 3)
  return new TensorDataset({ name: 'small', images, labels, sampleShape, numClasses: 3 })
}

test('fashion-mnist: split sizes, per-class counts and skipped records', (t) => {
  const started = performance.now()
  const f = getFashion()
  t.log(`fashion-mnist load: ${f.loadMs.toFixed(0)} ms (test saw ${(performance.now() - started).toFixed(0)} ms)`)
  t.is(f.train.length, 60_000)
  t.is(f.test.length, 10_000)
  t.deepEqual(f.train.classCounts(), new Array(10).fill(6000))
  t.deepEqual(f.test.classCounts(), new Array(10).fill(1000))
  t.is(f.skipped, 2)
  t.deepEqual(
    f.skippedRecords.map((r) => [r.classIndex, r.record]),
    [
      [0, 1000],
      [0, 7001],
    ],
  )
  t.deepEqual(f.train.sampleShape, [1, 28, 28])
  t.is(f.train.sampleSize, 784)
  t.is(f.train.numClasses, 10)
  t.deepEqual(f.train.classNames, FASHION_MNIST_CLASSES)
  t.is(f.train.classNames[9], 'Ankle boot')
})

test('fashion-mnist: pixel values are in [0, 1] and use the full range', (t) => {
  const { train, test: testSet } = getFashion()
  for (const ds of [train, testSet]) {
    let min = Infinity
    let max = -Infinity
    for (const v of ds.images) {
      if (v < min) min = v
      if (v > max) max = v
    }
    t.is(min, 0, ds.name)
    t.is(max, 1, ds.name)
  }
})

test('fashion-mnist: records land where the split says, scaled by 1/255', (t) => {
  const { train, test: testSet } = getFashion()
  const raw0 = rawFashionClass(0)
  t.is(raw0.length, 7002)
  // First valid record of class 0 is the first train image.
  t.deepEqual(train.get(0).x, scaled(raw0[0] as number[]))
  t.is(train.get(0).y, 0)
  // Record 1000 is empty, so train row 1000 is record 1001.
  t.deepEqual(train.get(1000).x, scaled(raw0[1001] as number[]))
  // Last train image of class 0: 6,000th valid record = file record 6000.
  t.deepEqual(train.get(5999).x, scaled(raw0[6000] as number[]))
  // Last test image of class 0 is the last *valid* record (7000; 7001 is empty).
  t.deepEqual(testSet.get(999).x, scaled(raw0[7000] as number[]))
  t.deepEqual(testSet.get(0).x, scaled(raw0[6001] as number[]))

  const raw9 = rawFashionClass(9)
  t.deepEqual(testSet.get(9999).x, scaled(raw9[raw9.length - 1] as number[]))
  t.is(testSet.get(9999).y, 9)
  t.deepEqual(train.get(9 * 6000).x, scaled(raw9[0] as number[]))
  t.is(train.get(9 * 6000).y, 9)
})

test('fashion-mnist: limitPerClass is validated', (t) => {
  t.throws(() => loadFashionMnist({ limitPerClass: 0 }), {
    message: /^limitPerClass: expected a positive integer, received 0$/,
  })
  t.throws(() => loadFashionMnist({ limitPerClass: 1.5 }), { message: /^limitPerClass:/ })
})

test('fashion-mnist (synthetic files): invalid records skipped, limitPerClass, split from the last valid records, too few valid fails', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dualstream-fm-'))
  const good = new Array(784).fill(7)
  const bad = [[], good.slice(1), [...good.slice(1), 256], [...good.slice(1), 1.5], [...good.slice(1), -1], 'x', null]
  // Class 4 has 7,005 valid records tagged by index: test must be the last 1,000 (6005..),
  // not the 1,000 right after train.
  const tagged = Array.from({ length: 7005 }, (_, i) => [i % 251, ...good.slice(1)])
  // Joining pre-serialised records is much faster than JSON.stringify of 70,000 arrays.
  const goodJson = JSON.stringify(good)
  const fileText = (records: string[]): string => `{"data": [\n${records.join(',\n')}\n]}`
  for (let c = 0; c < 10; c++) {
    const records =
      c === 3
        ? [...bad.map((r) => JSON.stringify(r)), ...new Array<string>(7000).fill(goodJson)]
        : c === 4
          ? tagged.map((r) => JSON.stringify(r))
          : new Array<string>(7000).fill(goodJson)
    writeFileSync(join(dir, `${c}.json`), fileText(records))
  }
  const ok = loadFashionMnist({ dir, limitPerClass: 2 })
  t.is(ok.skipped, bad.length)
  t.true(ok.skippedRecords.every((r) => r.classIndex === 3))
  t.regex(ok.skippedRecords[2].reason, /256/)
  t.is(ok.train.length, 20)
  t.is(ok.test.length, 20)
  t.deepEqual(ok.train.classCounts(), new Array(10).fill(2))
  t.is(ok.test.get(4 * 2).x[0], Math.fround((6005 % 251) / 255))
  t.is(ok.test.get(4 * 2 + 1).x[0], Math.fround((6006 % 251) / 255))
  t.is(ok.train.get(4 * 2 + 1).x[0], Math.fround(1 / 255))

  // Class 0 is read first, so breaking it keeps these failure cases fast.
  writeFileSync(join(dir, '0.json'), fileText([...new Array<string>(6999).fill(goodJson), '[1, 2]']))
  const err = t.throws(() => loadFashionMnist({ dir }), { instanceOf: DualstreamError })
  t.is(err?.code, 'ERR_DATA')
  t.regex(err?.message ?? '', /0\.json \(class 0 "T-shirt\/top"\).*7000.*6999 of 7000/)

  writeFileSync(join(dir, '0.json'), '{"rows": []}')
  t.throws(() => loadFashionMnist({ dir }), { message: /0\.json: expected an object with a "data" array/ })
  writeFileSync(join(dir, '0.json'), '{"data": [')
  t.throws(() => loadFashionMnist({ dir }), { message: /0\.json is not valid JSON/ })
})

test('mnist: per-class counts add up to 10,000 and the split is round(20%) per class', (t) => {
  const m = getMnist()
  t.log(`mnist load: ${m.loadMs.toFixed(0)} ms`)
  const dir = join(dirname(require.resolve('mnist/package.json')), 'src', 'digits')
  const fileCounts = Array.from({ length: 10 }, (_, c) => {
    const data = (JSON.parse(readFileSync(join(dir, `${c}.json`), 'utf8')) as { data: number[] }).data
    return data.length / 784
  })
  const trainCounts = m.train.classCounts()
  const testCounts = m.test.classCounts()
  t.is(m.train.length + m.test.length, 10_000)
  for (let c = 0; c < 10; c++) {
    t.is(trainCounts[c] + testCounts[c], fileCounts[c], `digit ${c}`)
    t.is(testCounts[c], Math.round(fileCounts[c] * 0.2), `digit ${c}`)
  }
  t.is(mnistTestCount(1001), 200)
  t.is(mnistTestCount(1127), 225)
  t.deepEqual(m.test.sampleShape, [1, 28, 28])

  // Last test image of digit 9 is the last 784 values of 9.json.
  const raw9 = (JSON.parse(readFileSync(join(dir, '9.json'), 'utf8')) as { data: number[] }).data
  t.deepEqual(m.test.get(m.test.length - 1).x, Float32Array.from(raw9.slice(-784)))
  t.deepEqual(m.train.get(m.train.length - trainCounts[9]).x, Float32Array.from(raw9.slice(0, 784)))
})

test('mnist: malformed files fail with the file and position', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'dualstream-mnist-'))
  for (let c = 0; c < 10; c++)
    writeFileSync(join(dir, `${c}.json`), JSON.stringify({ data: new Array(784 * 5).fill(0.5) }))
  const m = loadMnist({ dir })
  t.is(m.train.length, 40)
  t.is(m.test.length, 10)
  writeFileSync(join(dir, '2.json'), JSON.stringify({ data: new Array(784 * 5 + 1).fill(0.5) }))
  t.throws(() => loadMnist({ dir }), {
    message: /2\.json \(digit 2\): expected a non-zero multiple of 784 values, found 3921/,
  })
  const data = new Array(784 * 5).fill(0.5)
  data[784 + 3] = 1.5
  writeFileSync(join(dir, '2.json'), JSON.stringify({ data }))
  t.throws(() => loadMnist({ dir }), { message: /image 1, pixel 3\) is 1\.5/ })
})

test('batches: unshuffled batches cover the dataset in order with matching contents', (t) => {
  const ds = small(10)
  const seen: number[] = []
  const sizes: number[] = []
  for (const b of ds.batches(4)) {
    sizes.push(b.size)
    t.is(b.x.length, b.size * ds.sampleSize)
    t.is(b.y.length, b.size)
    for (let j = 0; j < b.size; j++) {
      const i = b.indices[j]
      seen.push(i)
      t.deepEqual(b.x.subarray(j * ds.sampleSize, (j + 1) * ds.sampleSize), ds.get(i).x)
      t.is(b.y[j], ds.labels[i])
    }
  }
  t.deepEqual(sizes, [4, 4, 2])
  t.deepEqual(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9])
  t.is(ds.numBatches(4), 3)
})

test('batches: dropLast drops only a short final batch', (t) => {
  const ds = small(10)
  t.deepEqual(
    [...ds.batches(4, { dropLast: true })].map((b) => b.size),
    [4, 4],
  )
  t.deepEqual(
    [...ds.batches(5, { dropLast: true })].map((b) => b.size),
    [5, 5],
  )
  t.deepEqual(
    [...ds.batches(11, { dropLast: true })].map((b) => b.size),
    [],
  )
  t.deepEqual(
    [...ds.batches(11)].map((b) => b.size),
    [10],
  )
  t.is(ds.numBatches(4, true), 2)
  t.is(ds.numBatches(11, true), 0)
})

test('batches: shuffled order is a seeded permutation, distinct per epoch', (t) => {
  const ds = small(200, [3])
  const orderOf = (opts: { seed: number; epoch: number }): number[] => {
    const out: number[] = []
    for (const b of ds.batches(32, { shuffle: true, ...opts })) {
      for (let j = 0; j < b.size; j++) {
        out.push(b.indices[j])
        // Sample i's first value is i, so contents must follow the shuffled index.
        t.is(b.x[j * 3], b.indices[j])
      }
    }
    return out
  }
  const a = orderOf({ seed: 7, epoch: 0 })
  t.deepEqual(
    [...a].sort((p, q) => p - q),
    Array.from({ length: 200 }, (_, i) => i),
  )
  t.notDeepEqual(
    a,
    Array.from({ length: 200 }, (_, i) => i),
  )
  t.deepEqual(orderOf({ seed: 7, epoch: 0 }), a)
  t.notDeepEqual(orderOf({ seed: 7, epoch: 1 }), a)
  t.notDeepEqual(orderOf({ seed: 8, epoch: 0 }), a)
  // Epoch 5's order does not depend on having iterated epochs 0..4.
  t.deepEqual(Array.from(ds.order({ shuffle: true, seed: 7, epoch: 5 })), orderOf({ seed: 7, epoch: 5 }))
})

test('batches: buffers are reused across batches of one iteration', (t) => {
  const ds = small(10)
  const it = ds.batches(4)
  const first = it.next().value
  const second = it.next().value
  t.truthy(first && second)
  t.is(first?.x, second?.x)
  t.is(first?.x[0], 4) // overwritten by the second batch: sample 4
  const last = it.next().value
  t.is(last?.x.buffer, first?.x.buffer)
  t.is(last?.size, 2)
})

test('batches: invalid arguments throw at the call site', (t) => {
  const ds = small(10)
  t.throws(() => ds.batches(0), { message: /^batchSize: expected a positive integer, received 0$/ })
  t.throws(() => ds.batches(2.5), { message: /batchSize/ })
  t.throws(() => ds.batches(4, { shuffle: true, seed: -1 }), {
    message: /^seed: expected an integer in \[0, 2\^32\), received -1$/,
  })
  t.throws(() => ds.batches(4, { epoch: 1.5 }), { message: /^epoch:/ })
})

test('subset / take / sample copy the right samples', (t) => {
  const ds = small(10)
  const sub = ds.subset([9, 2, 2])
  t.is(sub.length, 3)
  t.deepEqual(sub.get(0).x, ds.get(9).x)
  t.deepEqual(sub.get(2).x, ds.get(2).x)
  t.deepEqual(Array.from(sub.labels), [0, 2, 2])
  t.not(sub.images.buffer, ds.images.buffer)
  t.throws(() => ds.subset([0, 10]), { message: /^indices\[1\]: expected an integer index in \[0, 10\)/ })
  t.is(ds.take(3).length, 3)
  t.is(ds.take(30).length, 10)
  t.deepEqual(ds.take(3).get(2).x, ds.get(2).x)
  const s1 = ds.sample(5, 3)
  t.is(s1.length, 5)
  t.deepEqual(s1.images, ds.sample(5, 3).images)
  const firsts = Array.from({ length: 5 }, (_, i) => s1.get(i).x[0])
  t.deepEqual(
    firsts,
    [...new Set(firsts)].sort((a, b) => a - b),
  )
})

test('constructor errors name the argument, the expectation and what was received', (t) => {
  const base: TensorDatasetOptions = {
    name: 'd',
    images: new Float32Array(12),
    labels: new Uint8Array(2),
    sampleShape: [2, 3],
    numClasses: 3,
  }
  t.notThrows(() => new TensorDataset(base))
  const cases: Array<[Partial<TensorDatasetOptions>, RegExp]> = [
    [{ name: '' }, /^name: expected a non-empty string, received ""$/],
    [
      { images: new Float32Array(11) },
      /^images: expected length 12 \(labels\.length 2 × sample size 6 .*received length 11$/,
    ],
    [{ images: [1, 2] as unknown as Float32Array }, /^images: expected a Float32Array, received an array of length 2$/],
    [
      { labels: new Int32Array(2) as unknown as Uint8Array },
      /^labels: expected a Uint8Array or Uint32Array, received a Int32Array/,
    ],
    [{ labels: Uint8Array.of(0, 3) }, /^labels\[1\]: expected a class index in \[0, 3\).*received 3$/],
    [{ sampleShape: [2, 0] }, /^sampleShape\[1\]: expected a positive integer, received 0$/],
    [{ sampleShape: [] }, /^sampleShape:/],
    [{ numClasses: 0 }, /^numClasses: expected a positive integer, received 0$/],
    [
      { images: Float32Array.of(0, 0, 0, 0, 0, 0, 0, NaN, 0, 0, 0, 0) },
      /^images\[7\]: expected a finite number \(sample 1, offset 1\), received NaN$/,
    ],
    [{ images: Float32Array.of(0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, -Infinity) }, /^images\[11\]:.*received -Infinity$/],
    [{ classNames: ['a', 'b'] }, /^classNames: expected an array of 3 strings/],
  ]
  for (const [patch, re] of cases) {
    const err = t.throws(() => new TensorDataset({ ...base, ...patch }), { instanceOf: DualstreamError }, re.source)
    t.regex(err?.message ?? '', re)
    t.is(err?.code, 'ERR_ARG')
  }
})

test('random: mulberry32 is deterministic, derived seeds differ, ints are in range and unbiased-ish', (t) => {
  const a = new Rng(42)
  const b = new Rng(42)
  const seqA = Array.from({ length: 5 }, () => a.nextUint32())
  t.deepEqual(
    seqA,
    Array.from({ length: 5 }, () => b.nextUint32()),
  )
  t.notDeepEqual(
    seqA,
    Array.from({ length: 5 }, () => new Rng(43).nextUint32()),
  )
  t.not(deriveSeed(1, 0), deriveSeed(1, 1))
  t.not(deriveSeed(1, 0), deriveSeed(2, 0))
  t.is(deriveSeed(1, 3), deriveSeed(1, 3))
  const r = new Rng(1)
  const counts = new Array(6).fill(0)
  for (let i = 0; i < 60_000; i++) counts[r.int(6)]++
  for (const c of counts) t.true(Math.abs(c - 10_000) < 500, String(counts))
  const p = permutation(1000, new Rng(9))
  t.is(new Set(p).size, 1000)
  t.throws(() => new Rng(2 ** 32), { message: /^seed:/ })
})
