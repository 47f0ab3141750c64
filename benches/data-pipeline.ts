// Data time vs compute time per training step on W2-sized event frames ([T=8, N=8, 2, 64, 64]),
// and whether the DataLoader's prefetch hides the data time.
//   npx tsx benches/data-pipeline.ts [--steps 12] [--events 300000]
// Data: DVS128-sized recordings (128 x 128, `--events` events over 1.5 s each, like a DVS
// Gesture window), 16 distinct ones held in memory; a batch is integrated (split by number, T = 8), downscaled
// 2x to 64 x 64, randomly cropped (padding 4) and flipped, then stacked time-major. File
// decoding is not included (the parsers own it). Compute: one W2 (SEW, benches/workloads.ts)
// training step on that batch.
import { DataLoader, type EventSample, type Events, type IndexedDataset, Model, sgd, transforms } from '../ts/index'
import { record } from './record'
import { w2 } from './workloads'

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const STEPS = arg('steps', 12)
const EVENTS = arg('events', 300_000)
const WARMUP = 2
const BATCH = 8

/** A deterministic DVS128-like recording: events clustered around a moving blob plus noise. */
function recording(seed: number, n: number): Events {
  let s = seed * 2654435761 + 1
  const rand = () => {
    s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) | 0
    return ((s ^ (s >>> 13)) >>> 0) / 2 ** 32
  }
  const t = new Float64Array(n)
  const x = new Uint16Array(n)
  const y = new Uint16Array(n)
  const p = new Uint8Array(n)
  for (let k = 0; k < n; k++) {
    t[k] = Math.floor((k / n) * 1_500_000)
    const phase = (k / n) * Math.PI * 4 + seed
    const noise = rand() < 0.2
    x[k] = noise
      ? Math.floor(rand() * 128)
      : Math.min(127, Math.max(0, Math.round(64 + 40 * Math.cos(phase) + (rand() - 0.5) * 24)))
    y[k] = noise
      ? Math.floor(rand() * 128)
      : Math.min(127, Math.max(0, Math.round(64 + 40 * Math.sin(phase) + (rand() - 0.5) * 24)))
    p[k] = rand() < 0.5 ? 1 : 0
  }
  return { width: 128, height: 128, t, x, y, p }
}

/** `length` samples cycling over `distinct` recordings held in memory (memory stays bounded). */
class InMemoryEvents implements IndexedDataset {
  readonly samples: Events[]
  constructor(
    readonly length: number,
    distinct: number,
  ) {
    this.samples = Array.from({ length: distinct }, (_, i) => recording(i + 1, EVENTS))
  }
  get(i: number): EventSample {
    return { events: this.samples[i % this.samples.length], label: i % 11 }
  }
}

async function main() {
  // One epoch covers every measured loop, so no loop crosses an epoch boundary (where the queue
  // of a new epoch starts empty).
  const dataset = new InMemoryEvents(BATCH * (WARMUP + STEPS + 1), 16)
  const pipeline = {
    frames: { split: 'number' as const, frames: 8, downscale: 2 },
    transforms: [transforms.randomCrop(64, 4), transforms.horizontalFlip()],
  }
  const w = w2()
  const model = new Model(w.layers, {
    timeSteps: w.timeSteps,
    inputShape: w.sampleShape,
    encoding: 'sequence',
    seed: 1,
  })
  model.configureTraining(sgd({ lr: 0.05, momentum: 0.9 }))
  const total = WARMUP + STEPS
  // Enough epochs' worth of batches: the loader cycles the dataset by epoch.
  async function* batches(prefetch: number) {
    const loader = new DataLoader(dataset, { batchSize: BATCH, shuffle: true, seed: 3, prefetch, pipeline })
    for (let epoch = 0; ; epoch++) for await (const b of loader.epoch(epoch)) yield b
  }
  const mean = (v: number[]) => v.reduce((a, b) => a + b, 0) / v.length

  // 1. Data alone: prepare batches back to back, nothing else running.
  const dataMs: number[] = []
  {
    let i = 0
    for await (const b of batches(0)) {
      if (i++ >= WARMUP) dataMs.push(b.prepareMs)
      if (i >= total) break
    }
  }
  // 2. Compute alone: train on one ready batch.
  const computeMs: number[] = []
  {
    const it = batches(0)
    const b = (await it.next()).value!
    await it.return(undefined)
    for (let i = 0; i < total; i++) {
      const s = performance.now()
      await model.trainBatch(b.x, b.y)
      if (i >= WARMUP) computeMs.push(performance.now() - s)
    }
  }
  // 3. and 4. The training loop fed by the loader, without and with prefetch.
  async function loop(prefetch: number) {
    const step: number[] = []
    const wait: number[] = []
    let i = 0
    let last = performance.now()
    for await (const b of batches(prefetch)) {
      await model.trainBatch(b.x, b.y)
      const now = performance.now()
      if (i >= WARMUP) {
        step.push(now - last)
        wait.push(b.waitMs)
      }
      last = now
      if (++i >= total) break
    }
    return { stepMs: mean(step), waitMs: mean(wait) }
  }
  const serial = await loop(0)
  const prefetched = await loop(2)
  const figures = {
    shape: [8, BATCH, 2, 64, 64],
    eventsPerSample: EVENTS,
    steps: STEPS,
    dataMsPerBatch: mean(dataMs),
    computeMsPerStep: mean(computeMs),
    noPrefetch: serial,
    prefetch2: prefetched,
    hiddenFraction: 1 - prefetched.waitMs / mean(dataMs),
  }
  record('data-pipeline', `npx tsx benches/data-pipeline.ts --steps ${STEPS} --events ${EVENTS}`, figures)
  await model.dispose()
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
