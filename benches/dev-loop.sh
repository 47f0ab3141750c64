#!/usr/bin/env bash
# Times the developer loop of a fresh clone: `npm install` then `npm test`, each from a clean
# clone into a temp folder (no target/ or node_modules/ seeded; cargo and npm use their usual
# download caches), without DUALSTREAM_PYTHON so the Python specs skip. Appends one JSON line per
# commit to benches/results/dev-loop.jsonl: wall seconds and CPU seconds (user + sys of every
# process, the figure that holds up when other work loads the machine) of each step, and the load
# average around them.
#
#   benches/dev-loop.sh [COMMIT...]     (default HEAD; several commits are measured in turn)
#   DEV_LOOP_REPO=/path/to/repo         the repository to clone (default: this checkout)
#   DEV_LOOP_NOTE="..."                 a note stored with the record (e.g. what else ran)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
repo="${DEV_LOOP_REPO:-$root}"
out="$root/benches/results/dev-loop.jsonl"
[ $# -gt 0 ] || set -- HEAD
unset DUALSTREAM_PYTHON DUALSTREAM_REQUIRE_PYTHON CARGO_TARGET_DIR CARGO_BUILD_TARGET_DIR

# Runs "$@" in $dir, sets $wall and $cpu (seconds) and $status.
timed() {
  local times
  times="$(mktemp)"
  set +e
  (cd "$dir" && /usr/bin/time -f '%e %U %S' -o "$times" "$@") >>"$log" 2>&1
  status=$?
  set -e
  read -r wall user sys < <(tail -n 1 "$times")
  cpu="$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.1f", u + s }')"
  rm -f "$times"
}

for commit in "$@"; do
  dir="$(mktemp -d /tmp/dualstream-dev-loop-XXXXXX)"
  log="$dir.log"
  git clone --quiet "$repo" "$dir"
  git -C "$dir" checkout --quiet "$(git -C "$repo" rev-parse "$commit")"
  rev="$(git -C "$dir" rev-parse --short HEAD)"
  load_before="$(cut -d' ' -f1 /proc/loadavg)"
  timed npm install --no-audit --no-fund
  install_wall=$wall install_cpu=$cpu install_status=$status
  test_wall=0 test_cpu=0 test_status=1
  if [ "$install_status" = 0 ]; then
    timed npm test
    test_wall=$wall test_cpu=$cpu test_status=$status
  fi
  load_after="$(cut -d' ' -f1 /proc/loadavg)"
  specs="$(grep -Eo '[0-9]+ tests? passed' "$log" | tail -n 1 || true)"
  node -e '
    const [out, ...v] = process.argv.slice(1)
    const n = (s) => Number(s)
    const os = require("node:os")
    const record = {
      date: new Date().toISOString(),
      command: "npm install --no-audit --no-fund && npm test (fresh clone, no DUALSTREAM_PYTHON)",
      revision: v[0],
      install: { wallSeconds: n(v[1]), cpuSeconds: n(v[2]), exitCode: n(v[3]) },
      test: { wallSeconds: n(v[4]), cpuSeconds: n(v[5]), exitCode: n(v[6]) },
      total: { wallSeconds: n(v[1]) + n(v[4]), cpuSeconds: n(v[2]) + n(v[5]) },
      avaResult: v[7],
      loadAverage: { before: n(v[8]), after: n(v[9]) },
      machine: { cores: os.cpus().length, cpu: os.cpus()[0].model, memoryGiB: Math.round(os.totalmem() / 2 ** 30), node: process.version },
      note: v[10] || undefined,
    }
    require("node:fs").appendFileSync(out, JSON.stringify(record) + "\n")
    console.log(JSON.stringify(record))
  ' "$out" "$rev" "$install_wall" "$install_cpu" "$install_status" "$test_wall" "$test_cpu" \
    "$test_status" "$specs" "$load_before" "$load_after" "${DEV_LOOP_NOTE:-}"
  echo "log: $log" >&2
  rm -rf "$dir"
done
