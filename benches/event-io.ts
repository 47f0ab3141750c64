// Throughput of the event-file writers and readers through the TypeScript API (so the copy into
// typed arrays is included): 5 M synthetic events per format, written then read back.
//   npx tsx benches/event-io.ts
import { mkdtempSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type EventFormat, type EventStream, readEvents, writeEvents } from '../ts/index'

const N = 5_000_000

function events(size: number): EventStream {
  const e: EventStream = {
    width: size,
    height: size,
    t: new Float64Array(N),
    x: new Uint16Array(N),
    y: new Uint16Array(N),
    p: new Uint8Array(N),
  }
  for (let i = 0; i < N; i++) {
    e.t[i] = i * 2
    e.x[i] = (i * 7) % size
    e.y[i] = (i * 13) % size
    e.p[i] = i & 1
  }
  return e
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'dualstream-event-io-'))
  try {
    console.log('| format | MB | write ms | read ms | read M events/s |\n|---|---|---|---|---|')
    const cases: [EventFormat, string, number][] = [
      ['nmnist', '.bin', 34],
      ['aedat2', '.aedat', 128],
      ['aedat3', '.aedat', 128],
      ['aedat4', '.aedat4', 128],
    ]
    for (const [format, ext, size] of cases) {
      const e = events(size)
      const path = join(dir, format + ext)
      let start = performance.now()
      await writeEvents(path, e, { format })
      const writeMs = performance.now() - start
      start = performance.now()
      const back = await readEvents(path, { format, width: size, height: size })
      const readMs = performance.now() - start
      if (back.t.length !== N) throw new Error(`${format}: read ${back.t.length} of ${N} events`)
      const mb = statSync(path).size / 1e6
      console.log(
        `| ${format} | ${mb.toFixed(1)} | ${writeMs.toFixed(0)} | ${readMs.toFixed(0)} | ${(N / readMs / 1e3).toFixed(1)} |`,
      )
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

void main()
