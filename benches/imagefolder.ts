// Image-folder throughput: images per second decoded (JPEG, in Rust) and transformed by the
// batch pipeline, with the training transform (RandomResizedCrop 224 + flip + normalise) and the
// evaluation one (resize 256 + centre crop 224 + normalise), on 1 and 2 threads.
//   npm run bench:imagefolder [-- --images 300 --batch 32]
// Data: a generated ImageNet-like folder (benches/results/tmp/imagefolder/: 10 classes of
// 500x375 photographs-like JPEGs, quality 90, 4:2:0 chroma, written by Pillow once: needs the
// interop Python of scripts/python/setup-venv.sh, or DUALSTREAM_PYTHON). Threads are set per
// child process with RAYON_NUM_THREADS (the pipeline's pool) and UV_THREADPOOL_SIZE.
import { spawnSync } from 'node:child_process'
import { existsSync, readdirSync } from 'node:fs'
import { loadavg } from 'node:os'
import { join } from 'node:path'
import { ImageFolder } from '../ts/index'
import { record } from './record'

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`)
  return i >= 0 ? Number(process.argv[i + 1]) : fallback
}
const IMAGES = arg('images', 300)
const BATCH = arg('batch', 32)
const ROOT = join(__dirname, 'results', 'tmp', 'imagefolder')

const MAKE = `
import os, sys
import numpy as np
from PIL import Image
root, n = sys.argv[1], int(sys.argv[2])
rng = np.random.default_rng(0)
for i in range(n):
    for split in ["train", "val"]:
        d = os.path.join(root, split, f"class{i % 10:02d}")
        os.makedirs(d, exist_ok=True)
        # Photograph-like content: smooth shapes at a few scales plus sensor noise.
        img = np.zeros((375, 500, 3))
        for scale in [4, 16, 64]:
            small = rng.uniform(0, 255, (375 // scale + 2, 500 // scale + 2, 3))
            big = np.asarray(Image.fromarray(small.astype(np.uint8)).resize((500 + 2 * scale, 375 + 2 * scale), Image.BICUBIC))
            img += big[:375, :500] * {4: 0.15, 16: 0.35, 64: 0.5}[scale]
        img += rng.normal(0, 4, img.shape)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(os.path.join(d, f"img{i:05d}.JPEG"), quality=90)
`

function ensureFolder(): void {
  const have = existsSync(join(ROOT, 'train'))
    ? readdirSync(join(ROOT, 'train')).reduce((n, c) => n + readdirSync(join(ROOT, 'train', c)).length, 0)
    : 0
  if (have === IMAGES) return
  const python = process.env.DUALSTREAM_PYTHON ?? join(__dirname, '..', '.venv-interop', 'bin', 'python')
  if (!existsSync(python)) throw new Error(`no Python with Pillow at ${python}: run scripts/python/setup-venv.sh`)
  spawnSync('rm', ['-rf', ROOT])
  const r = spawnSync(python, ['-c', MAKE, ROOT, String(IMAGES)], { encoding: 'utf8' })
  if (r.status !== 0) throw new Error(r.stderr)
}

async function measure(): Promise<void> {
  const out: Record<string, number> = {}
  for (const [name, split] of [
    ['training', 'train'],
    ['evaluation', 'test'],
  ] as const) {
    const data = new ImageFolder(ROOT, { split }).data({ prefetch: 2 })
    // Warm-up: one batch (page cache, thread pools).
    for await (const _ of data.batches(BATCH, { shuffle: true, seed: 1 })) break
    const start = performance.now()
    let n = 0
    for await (const b of data.batches(BATCH, { shuffle: true, seed: 0 })) n += b.size
    out[`${name}ImagesPerSecond`] = n / ((performance.now() - start) / 1000)
  }
  process.stdout.write(`${JSON.stringify(out)}\n`)
}

async function main(): Promise<void> {
  if (process.argv.includes('--worker')) return measure()
  ensureFolder()
  const threads: Record<string, unknown> = {}
  for (const t of [1, 2]) {
    const r = spawnSync(process.execPath, [...process.execArgv, __filename, '--worker', '--batch', String(BATCH)], {
      encoding: 'utf8',
      env: { ...process.env, RAYON_NUM_THREADS: String(t), UV_THREADPOOL_SIZE: String(Math.max(t, 2)) },
    })
    if (r.status !== 0) throw new Error(r.stderr)
    threads[String(t)] = JSON.parse(r.stdout.trim().split('\n').pop()!)
  }
  record('imagefolder', `npm run bench:imagefolder -- --images ${IMAGES} --batch ${BATCH}`, {
    images: IMAGES,
    imageSize: [375, 500],
    jpegQuality: 90,
    batch: BATCH,
    prefetch: 2,
    output: [3, 224, 224],
    // The machine is shared: its 1-minute load average when the run ended.
    loadAverage: loadavg()[0],
    threads,
  })
}

main().catch((e) => {
  console.error(e)
  process.exit(1)
})
