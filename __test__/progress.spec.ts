import test from 'ava'

import { formatDuration, formatPercent, formatRate, ProgressDisplay, renderBar } from '../ts/progress'

class FakeStream {
  chunks: string[] = []
  constructor(
    readonly isTTY = false,
    readonly columns?: number,
  ) {}
  write(chunk: string): boolean {
    this.chunks.push(chunk)
    return true
  }
  get text(): string {
    return this.chunks.join('')
  }
}

/** A manual clock in milliseconds. */
function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 0
  return {
    now: () => t,
    advance: (ms) => {
      t += ms
    },
  }
}

test('formatDuration', (t) => {
  t.is(formatDuration(0), '0.0s')
  t.is(formatDuration(0.46), '0.4s')
  t.is(formatDuration(9.99), '9.9s')
  t.is(formatDuration(10), '10s')
  t.is(formatDuration(59.9), '59s')
  t.is(formatDuration(60), '1m00s')
  t.is(formatDuration(125), '2m05s')
  t.is(formatDuration(3599), '59m59s')
  t.is(formatDuration(3600), '1h00m')
  t.is(formatDuration(3 * 3600 + 2 * 60 + 59), '3h02m')
  t.is(formatDuration(86400 + 4 * 3600), '1d04h')
  t.is(formatDuration(NaN), '--')
  t.is(formatDuration(Infinity), '--')
  t.is(formatDuration(-1), '--')
})

test('renderBar', (t) => {
  t.is(renderBar(0, 10), '..........')
  t.is(renderBar(0.5, 10), '#####.....')
  t.is(renderBar(0.99, 10), '#########.')
  t.is(renderBar(1, 10), '##########')
  t.is(renderBar(0.3, 10), '###.......') // 0.3*10 is 2.9999… in floating point
  t.is(renderBar(2, 4), '####')
  t.is(renderBar(-1, 4), '....')
  t.is(renderBar(NaN, 4), '....')
  t.is(renderBar(0.5, 0), '')
  for (let i = 0; i <= 37; i++) t.is(renderBar(i / 37, 7).length, 7)
  t.throws(() => renderBar(0.5, -1), { message: /^width:/ })
})

test('formatRate and formatPercent', (t) => {
  t.is(formatRate(5.25), '5.3')
  t.is(formatRate(850.4), '850')
  t.is(formatRate(12345), '12.3k')
  t.is(formatRate(1_200_000), '1.20M')
  t.is(formatRate(NaN), '--')
  t.is(formatPercent(0.8523), '85.2%')
  t.is(formatPercent(1), '100.0%')
})

test('lines mode: one line per epoch end plus every 10% of an epoch, no carriage returns', (t) => {
  const s = new FakeStream(false)
  const c = clock()
  const p = new ProgressDisplay({ stream: s, epochs: 2, stepsPerEpoch: 20, now: c.now })
  t.is(p.mode, 'lines')
  for (let epoch = 1; epoch <= 2; epoch++) {
    for (let step = 1; step <= 20; step++) {
      c.advance(100)
      p.update({ epoch, step, samplesPerSecond: 640, loss: 1 / step, accuracy: step / 20, firingRate: 0.125 })
    }
    p.endEpoch({ epoch, loss: 0.5, accuracy: 0.9, firingRate: 0.1, testAccuracy: 0.875, samplesPerSecond: 640 })
  }
  p.finish()
  const lines = s.text.split('\n')
  t.is(lines.pop(), '')
  t.false(s.text.includes('\r'))
  // 9 intermediate lines (10%..90%) + 1 epoch line, per epoch, + the finish line.
  t.is(lines.length, 2 * 10 + 1)
  t.is(lines[0], 'epoch 1/2  step 2/20 (10%)  640 samples/s  ETA 3.8s  loss 0.5000  acc 10.0%  rate 0.125')
  t.is(lines[8], 'epoch 1/2  step 18/20 (90%)  640 samples/s  ETA 2.2s  loss 0.0556  acc 90.0%  rate 0.125')
  t.is(lines[9], 'epoch 1/2  loss 0.5000  acc 90.0%  rate 0.100  test acc 87.5%  640 samples/s  2.0s')
  t.regex(lines[10], /^epoch 2\/2 {2}step 2\/20 \(10%\)/)
  t.is(lines[19], 'epoch 2/2  loss 0.5000  acc 90.0%  rate 0.100  test acc 87.5%  640 samples/s  2.0s')
  t.is(lines[20], 'finished in 4.0s')
})

test('lines mode with linesEvery 0 prints only epoch ends; calls after finish are ignored', (t) => {
  const s = new FakeStream(false)
  const p = new ProgressDisplay({ stream: s, epochs: 3, stepsPerEpoch: 5, linesEvery: 0, now: clock().now })
  for (let step = 1; step <= 5; step++) p.update({ epoch: 1, step, loss: 1 })
  p.endEpoch({ epoch: 1, loss: 1, seconds: 12.5 })
  p.finish('stopped early')
  p.update({ epoch: 2, step: 1 })
  p.endEpoch({ epoch: 2 })
  p.finish()
  t.is(s.text, 'epoch 1/3  loss 1.0000  12s\nstopped early\n')
})

test('bar mode: redraws with \\r, throttles to the interval, fits the terminal width', (t) => {
  const s = new FakeStream(true, 60)
  const c = clock()
  const p = new ProgressDisplay({ stream: s, epochs: 1, stepsPerEpoch: 100, now: c.now })
  t.is(p.mode, 'bar')
  for (let step = 1; step <= 100; step++) {
    c.advance(10) // 100 steps/s: about one redraw every 10 steps at 10 redraws/s
    p.update({ epoch: 1, step, samplesPerSecond: 3200, loss: 0.25, accuracy: 0.5 })
  }
  const draws = s.chunks.filter((ch) => ch.startsWith('\r') && ch.length > 4)
  t.true(draws.length >= 10 && draws.length <= 12, `${draws.length} draws`)
  t.false(s.text.includes('\n'))
  for (const d of draws) t.true(d.replace('\r', '').replace('\x1b[K', '').length <= 59, d)
  t.true(draws[draws.length - 1].startsWith('\repoch 1/1  [####################] 100/100'))
  p.endEpoch({ epoch: 1, loss: 0.25 })
  p.finish()
  t.true(s.text.endsWith('\r\x1b[Kepoch 1/1  loss 0.2500  1.0s\nfinished in 1.0s\n'))
})

test('bar mode: log() clears the bar, prints the message, redraws the bar', (t) => {
  const s = new FakeStream(true)
  const p = new ProgressDisplay({ stream: s, epochs: 2, stepsPerEpoch: 4, now: clock().now })
  p.update({ epoch: 1, step: 1 })
  s.chunks.length = 0
  p.log('checkpoint saved')
  t.is(s.chunks[0], '\r\x1b[K')
  t.is(s.chunks[1], 'checkpoint saved\n')
  t.regex(s.chunks[2], /^\repoch 1\/2 {2}\[#####\.+\] 1\/4 {2}ETA --/)
})

test('silent mode writes nothing; explicit mode overrides TTY detection', (t) => {
  const s = new FakeStream(true)
  const p = new ProgressDisplay({ stream: s, epochs: 1, stepsPerEpoch: 2, mode: 'silent' })
  p.update({ epoch: 1, step: 1 })
  p.endEpoch({ epoch: 1 })
  p.log('x')
  p.finish()
  t.deepEqual(s.chunks, [])
  t.is(new ProgressDisplay({ stream: s, epochs: 1, stepsPerEpoch: 2, mode: 'lines' }).mode, 'lines')
})

test('ETA counts only remaining steps across epochs', (t) => {
  const c = clock()
  const p = new ProgressDisplay({ stream: new FakeStream(), epochs: 4, stepsPerEpoch: 10, now: c.now })
  c.advance(5000)
  t.is(p.eta(1, 10), 15) // 10 steps in 5 s, 30 to go
  const resumed = new ProgressDisplay({
    stream: new FakeStream(),
    epochs: 4,
    stepsPerEpoch: 10,
    startEpoch: 3,
    now: c.now,
  })
  c.advance(5000)
  t.is(resumed.eta(3, 10), 5) // only epoch 3's 10 steps were timed; 10 to go
  const midEpoch = new ProgressDisplay({
    stream: new FakeStream(),
    epochs: 4,
    stepsPerEpoch: 10,
    startEpoch: 3,
    startStep: 6,
    now: c.now,
  })
  c.advance(2000)
  t.is(midEpoch.eta(3, 10), 5) // 4 steps timed in 2 s, 10 to go
  t.throws(() => new ProgressDisplay({ stream: new FakeStream(), epochs: 4, stepsPerEpoch: 10, startStep: 10 }), {
    message: /^startStep: expected an integer in \[0, 10\)/,
  })
})

test('constructor validates its options', (t) => {
  const stream = new FakeStream()
  t.throws(() => new ProgressDisplay({ stream, epochs: 0, stepsPerEpoch: 1 }), {
    message: /^epochs: expected a positive integer, received 0$/,
  })
  t.throws(() => new ProgressDisplay({ stream, epochs: 1, stepsPerEpoch: 1.5 }), { message: /^stepsPerEpoch:/ })
  t.throws(() => new ProgressDisplay({ stream, epochs: 1, stepsPerEpoch: 1, mode: 'fancy' as never }), {
    message: /^mode:/,
  })
  t.throws(() => new ProgressDisplay({ stream: {} as never, epochs: 1, stepsPerEpoch: 1 }), { message: /^stream:/ })
})
