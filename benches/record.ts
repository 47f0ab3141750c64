// Appends one benchmark record (JSON line) to benches/results/<name>.jsonl with the command,
// the git revision and the machine, so every figure can be traced and compared like for like.
import { execSync } from 'node:child_process'
import { appendFileSync, mkdirSync } from 'node:fs'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'

export function machine() {
  const list = cpus()
  return {
    cores: list.length,
    cpu: list[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
  }
}

export function gitRevision(): string {
  try {
    const rev = execSync('git rev-parse --short HEAD', { encoding: 'utf8' }).trim()
    const dirty = execSync('git status --porcelain --untracked-files=no', { encoding: 'utf8' }).trim() !== ''
    return dirty ? `${rev}+dirty` : rev
  } catch {
    return 'unknown'
  }
}

export function record(name: string, command: string, figures: Record<string, unknown>): void {
  const dir = join(__dirname, 'results')
  mkdirSync(dir, { recursive: true })
  const line = { date: new Date().toISOString(), command, revision: gitRevision(), machine: machine(), ...figures }
  appendFileSync(join(dir, `${name}.jsonl`), `${JSON.stringify(line)}\n`)
  console.log(JSON.stringify(line, null, 2))
}
