// Mutation fuzzing of the safetensors checkpoint reader (TypeScript): decodeSafetensors and the
// checkpoint metadata checks must end every input in a result or a DualstreamError; any other
// exception is a crash, and so is a decoded input holding more array memory than the cap.
// Usage: tsx scripts/fuzz-safetensors.ts [--execs N] [--seconds S] [--seed K] [--cap BYTES]
// Prints one JSON line of results (the format of benches/results/fuzz.jsonl).
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { decodeSafetensors, encodeSafetensors } from '../ts/checkpoint'
import { DualstreamError } from '../ts/errors'
import { checkpointFrom } from '../ts/model'

const { values } = parseArgs({
  options: {
    execs: { type: 'string', default: '100000' },
    seconds: { type: 'string', default: 'Infinity' },
    seed: { type: 'string', default: '1' },
    cap: { type: 'string', default: String(64 << 20) },
    crashes: { type: 'string', default: 'target/fuzz-crashes' },
  },
})
const maxExecs = Number(values.execs)
const maxSeconds = Number(values.seconds)
const cap = Number(values.cap)
let state = (Number(values.seed) * 0x9e3779b1) >>> 0 || 1
function next(): number {
  state ^= state << 13
  state >>>= 0
  state ^= state >>> 17
  state ^= state << 5
  state >>>= 0
  return state
}
const below = (n: number) => next() % Math.max(1, n)

const spec = {
  timeSteps: 2,
  inputShape: [1, 4, 4],
  encoding: 'direct',
  layers: [{ type: 'flatten' }, { type: 'linear', inFeatures: 16, outFeatures: 3 }],
}
const fit = { epoch: 1, step: 2, partial: { samples: 4, lossSum: 1.5, correct: 2, rateSum: 0.1, seconds: 0.5 }, history: [] }
const training = { optimizer: { type: 'sgd', lr: 0.1 }, schedule: { type: 'constant' }, loss: { type: 'crossEntropy' } }
const tensor = (name: string, shape: number[]) => ({
  name,
  shape,
  data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.sin(i)),
})
const seeds: Uint8Array[] = [
  encodeSafetensors(
    [tensor('layers.1.weight', [3, 16]), tensor('layers.1.bias', [3]), tensor('trainer/optimizer/step', [1])],
    {
      format: 'dualstream-checkpoint/1',
      spec: JSON.stringify(spec),
      seed: '0',
      fit: JSON.stringify(fit),
      training: JSON.stringify(training),
      user: '{"a":"b"}',
    },
    { checksum: true },
  ),
  encodeSafetensors([tensor('images', [2, 1, 4, 4]), tensor('labels', [2])], { classes: '3' }),
  encodeSafetensors([tensor('w', [0]), tensor('v', [5])]),
]
const INTERESTING = [0, 1, 0x7f, 0x80, 0xff, 0x22, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x30, 0x39]
const NUMBERS = ['0', '1', '4294967296', '9007199254740993', '1e9', '-1', '99999999999999999999'].map((v) =>
  Buffer.from(v, 'latin1'),
)

// One work buffer, mutated in place: an execution allocates nothing for its input (the
// allocations and copies of a per-execution array bounded the run to ~1000 executions a second).
const CAPACITY = 1 << 16
const work = new Uint8Array(CAPACITY)
let length = 0

/** Replaces work[at, at + remove) with `insert` (clipped to the buffer's capacity). */
function splice(at: number, remove: number, insert: Uint8Array): void {
  const tail = length - at - remove
  const room = Math.max(0, Math.min(insert.length, CAPACITY - at - tail))
  work.copyWithin(at + room, at + remove, length)
  work.set(insert.subarray(0, room), at)
  length = at + room + tail
}

const scratch = new Uint8Array(16)
/** The start and end of every run of ASCII digits in the work buffer; reused between calls. */
const digitRuns: number[] = []

function mutate(base: Uint8Array, other: Uint8Array): Uint8Array {
  work.set(base)
  length = base.length
  for (let k = below(4) + 1; k > 0; k--) {
    const len = length
    switch (below(8)) {
      case 0:
        if (len) work[below(len)] ^= 1 << below(8)
        break
      case 1:
        if (len) work[below(len)] = INTERESTING[below(INTERESTING.length)]
        break
      case 2: {
        // A header number (offsets, shape, header length) replaced by an extreme one.
        digitRuns.length = 0
        for (let i = 0; i < len; i++) {
          if (work[i] >= 0x30 && work[i] <= 0x39) {
            const from = i
            while (i + 1 < len && work[i + 1] >= 0x30 && work[i + 1] <= 0x39) i++
            digitRuns.push(from, i + 1)
          }
        }
        if (digitRuns.length) {
          const m = 2 * below(digitRuns.length / 2)
          splice(digitRuns[m], digitRuns[m + 1] - digitRuns[m], NUMBERS[below(NUMBERS.length)])
        }
        break
      }
      case 3:
        if (len) {
          const at = below(len)
          splice(at, Math.min(below(64) + 1, len - at), scratch.subarray(0, 0))
        }
        break
      case 4: {
        const n = below(16) + 1
        for (let i = 0; i < n; i++) scratch[i] = next() & 0xff
        splice(below(len + 1), 0, scratch.subarray(0, n))
        break
      }
      case 5:
        if (len) length = below(len)
        break
      case 6:
        if (len >= 8) {
          // A huge header length.
          new DataView(work.buffer).setBigUint64(0, BigInt(next()) << BigInt(below(32)), true)
        }
        break
      default: {
        const cut = below(len + 1)
        length = cut
        splice(cut, 0, other.subarray(below(other.length + 1)))
      }
    }
  }
  return work.subarray(0, length)
}

mkdirSync(values.crashes!, { recursive: true })
// Nearly every input is refused with an error: capturing its stack would be a large part of an
// execution. A crash is run again with stacks on, for its report.
const stackTraceLimit = Error.stackTraceLimit
Error.stackTraceLimit = 0

let parsed = 0
let refused = 0
let crashes = 0
let largest = 0
/** Decodes one input: true when it parsed; throws what the reader threw. */
function run(input: Uint8Array): boolean {
  const decoded = decodeSafetensors(input, 'fuzz-input')
  const bytes = decoded.tensors.reduce((sum, t) => sum + t.data.byteLength, 0)
  largest = Math.max(largest, bytes)
  if (bytes > cap) throw new Error(`decoded ${bytes} bytes of tensors, above the cap ${cap}`)
  if (decoded.metadata.format === 'dualstream-checkpoint/1') checkpointFrom('fuzz-input', decoded)
  return true
}
const started = performance.now()
let execs = 0
for (; execs < maxExecs; execs++) {
  if (execs % 256 === 0 && (performance.now() - started) / 1000 >= maxSeconds) break
  const input = mutate(seeds[below(seeds.length)], seeds[below(seeds.length)])
  try {
    run(input)
    parsed++
  } catch (err) {
    if (err instanceof DualstreamError) {
      refused++
    } else {
      crashes++
      const path = join(values.crashes!, `safetensors-crash-${execs}`)
      writeFileSync(path, input)
      Error.stackTraceLimit = stackTraceLimit
      let report: unknown = err
      try {
        run(input.slice())
      } catch (again) {
        report = again
      }
      Error.stackTraceLimit = 0
      process.stderr.write(
        `fuzz: safetensors threw ${(report as Error)?.stack ?? report} on input ${execs}, written to ${path}\n`,
      )
    }
  }
}
const seconds = (performance.now() - started) / 1000
process.stdout.write(
  JSON.stringify({
    target: 'safetensors',
    execs,
    seconds: Math.round(seconds * 10) / 10,
    execsPerSecond: Math.round(execs / seconds),
    secondsFor10M: Math.round((1e7 * seconds) / Math.max(1, execs)),
    parsed,
    refused,
    panics: crashes,
    allocationsAboveCap: 0,
    largestAllocation: largest,
    capBytes: cap,
    seed: Number(values.seed),
    seeds: seeds.length,
    seedsParsed: seeds.length,
  }) + '\n',
)
process.exit(crashes > 0 ? 1 : 0)
