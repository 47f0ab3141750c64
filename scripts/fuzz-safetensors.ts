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

function mutate(base: Uint8Array, other: Uint8Array): Uint8Array {
  let data = Array.from(base)
  for (let k = below(4) + 1; k > 0; k--) {
    const len = data.length
    switch (below(8)) {
      case 0:
        if (len) data[below(len)] ^= 1 << below(8)
        break
      case 1:
        if (len) data[below(len)] = INTERESTING[below(INTERESTING.length)]
        break
      case 2: {
        // A header number (offsets, shape, header length) replaced by an extreme one.
        const text = Buffer.from(data).toString('latin1')
        const digits = [...text.matchAll(/\d+/g)]
        if (digits.length) {
          const m = digits[below(digits.length)]
          const value = ['0', '1', '4294967296', '9007199254740993', '1e9', '-1', '99999999999999999999'][below(7)]
          data = Array.from(Buffer.from(text.slice(0, m.index) + value + text.slice(m.index! + m[0].length), 'latin1'))
        }
        break
      }
      case 3:
        if (len) data.splice(below(len), below(64) + 1)
        break
      case 4:
        data.splice(below(len + 1), 0, ...Array.from({ length: below(16) + 1 }, () => next() & 0xff))
        break
      case 5:
        if (len) data.length = below(len)
        break
      case 6:
        if (len >= 8) {
          const view = new DataView(new ArrayBuffer(8))
          view.setBigUint64(0, BigInt(next()) << BigInt(below(32)), true) // a huge header length
          data.splice(0, 8, ...new Uint8Array(view.buffer))
        }
        break
      default: {
        const cut = below(len + 1)
        data = data.slice(0, cut).concat(Array.from(other.subarray(below(other.length + 1))))
      }
    }
  }
  return Uint8Array.from(data)
}

mkdirSync(values.crashes!, { recursive: true })
let parsed = 0
let refused = 0
let crashes = 0
let largest = 0
const started = performance.now()
let execs = 0
for (; execs < maxExecs; execs++) {
  if (execs % 256 === 0 && (performance.now() - started) / 1000 >= maxSeconds) break
  const input = mutate(seeds[below(seeds.length)], seeds[below(seeds.length)])
  try {
    const decoded = decodeSafetensors(input, 'fuzz-input')
    const bytes = decoded.tensors.reduce((sum, t) => sum + t.data.byteLength, 0)
    largest = Math.max(largest, bytes)
    if (bytes > cap) throw new Error(`decoded ${bytes} bytes of tensors, above the cap ${cap}`)
    if (decoded.metadata.format === 'dualstream-checkpoint/1') checkpointFrom('fuzz-input', decoded)
    parsed++
  } catch (err) {
    if (err instanceof DualstreamError) {
      refused++
    } else {
      crashes++
      const path = join(values.crashes!, `safetensors-crash-${execs}`)
      writeFileSync(path, input)
      process.stderr.write(`fuzz: safetensors threw ${(err as Error)?.stack ?? err} on input ${execs}, written to ${path}\n`)
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
