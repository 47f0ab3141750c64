// Peak training memory of W3 (the zoo's sew7b and dsnn7b at [T = 16, N = 8, 2, 128, 128]) in the
// default and the recompute memory mode, and the time a training step takes in each. Each
// (workload, mode) runs in its own process, so that its peak RSS is its own; the runs alternate
// modes (A, B, A, B) so that a changing machine load hits both alike. Each run also checks the
// training-memory prediction (`model.predictTrainingMemory`, what `dualstream info` prints)
// against the peak RSS the training added to the process and against the engine's own byte
// counters.
//   npm run bench:memory [-- --steps 3 --rounds 2 --batch 8]
//   npm run bench:memory -- --density     (W3's input density, from the shared DVS sample)
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { engineMemory, integrateEvents, readEvents } from '../ts/index'
import { record } from './record'
import { syntheticBatch, trainableModel, W3_WORKLOADS, w3 } from './workloads'

const { values } = parseArgs({
  options: {
    steps: { type: 'string', default: '3' },
    rounds: { type: 'string', default: '2' },
    batch: { type: 'string', default: '8' },
    only: { type: 'string' },
    memory: { type: 'string' },
    density: { type: 'boolean', default: false },
    sample: { type: 'string' },
  },
})
const steps = Number(values.steps)
const batch = Number(values.batch)
// The optional real recordings in a shared/data folder next to the checkout's folder (never
// copied into the repository), or --sample FILE.
const SAMPLE = values.sample ?? join(__dirname, '..', '..', 'shared', 'data', 'dvxplorer-sample.aedat4')

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

/** Fraction of frame values with at least one event: T = 16 frames split by event count. */
async function density(): Promise<void> {
  if (!existsSync(SAMPLE)) throw new Error(`${SAMPLE} is absent: the density needs the shared DVS sample`)
  const events = await readEvents(SAMPLE)
  const frames = await integrateEvents(events, { split: 'number', frames: 16 })
  const active = frames.data.reduce((n, v) => n + (v > 0 ? 1 : 0), 0)
  const d = active / frames.data.length
  console.log(
    `${SAMPLE}: ${events.t.length} events, ${events.width} x ${events.height}, frames [${frames.shape.join(', ')}], density ${d.toFixed(4)}`,
  )
}

async function measure(name: string, memory: 'default' | 'recompute'): Promise<Record<string, unknown>> {
  const w = w3(name.endsWith('-dst'), 16, batch)
  const model = trainableModel(w)
  model.setMemoryMode(memory)
  const { x, y } = syntheticBatch(w)
  const rssBefore = process.resourceUsage().maxRSS / 1024
  const predictedMiB = model.predictTrainingMemory(memory).bytes(batch) / 2 ** 20
  engineMemory(true)
  const times: number[] = []
  let storedBytes = 0
  for (let i = 0; i < steps; i++) {
    const t0 = performance.now()
    await model.trainBatch(x, y)
    times.push(performance.now() - t0)
    storedBytes = model.storedBytes()
  }
  const peakRssMiB = process.resourceUsage().maxRSS / 1024
  const enginePeakMiB = engineMemory(false).peak / 2 ** 20
  return {
    workload: name,
    memory,
    timeSteps: w.timeSteps,
    batch: w.batch,
    inputDensity: w.inputDensity,
    steps,
    trainStepMs: median(times.slice(1)),
    trainStepMsAll: times,
    rssBeforeTrainingMiB: rssBefore,
    peakRssMiB,
    storedBytesAfterStep: storedBytes,
    predictedTrainingMiB: predictedMiB,
    enginePeakMiB,
    // The prediction against what training added to the process's peak RSS.
    predictedOverRssGrowth: predictedMiB / (peakRssMiB - rssBefore),
  }
}

async function main(): Promise<void> {
  if (values.density) return density()
  if (values.only) {
    const r = await measure(values.only, values.memory as 'default' | 'recompute')
    process.stdout.write(`${JSON.stringify(r)}\n`)
    return
  }
  const results: Record<string, unknown>[] = []
  for (const w of W3_WORKLOADS) {
    for (let round = 0; round < Number(values.rounds); round++) {
      for (const memory of ['default', 'recompute']) {
        const args = ['--import', 'tsx', __filename, '--only', w.name, '--memory', memory]
        const r = spawnSync(process.execPath, [...args, '--steps', String(steps), '--batch', String(batch)], {
          encoding: 'utf8',
        })
        if (r.status !== 0) throw new Error(`${w.name} ${memory}: ${r.stderr}`)
        const row = JSON.parse(r.stdout.trim().split('\n').at(-1)!)
        console.log(
          `${w.name} ${memory}: peak RSS ${row.peakRssMiB.toFixed(0)} MiB (${(row.peakRssMiB - row.rssBeforeTrainingMiB).toFixed(0)} MiB added by training; predicted ${row.predictedTrainingMiB.toFixed(0)} MiB, engine peak ${row.enginePeakMiB.toFixed(0)} MiB), train step ${(row.trainStepMs / 1000).toFixed(1)} s`,
        )
        results.push({ round, ...row })
      }
    }
  }
  record('memory', `npm run bench:memory -- --steps ${steps} --rounds ${values.rounds} --batch ${batch}`, {
    threads: 'rayon default (2 cores), machine shared with other jobs (load average 10-15)',
    results,
  })
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
