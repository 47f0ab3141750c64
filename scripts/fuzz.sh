#!/usr/bin/env bash
# Runs every fuzz target (crates/fuzz for the Rust parsers, scripts/fuzz-safetensors.ts for the
# checkpoint reader) and appends one JSON line per target to benches/results/fuzz.jsonl:
# executions, seconds, executions per second, the seconds 10 million would take, panics and the
# largest single allocation (the run aborts on one above --cap).
#
#   scripts/fuzz.sh [--execs N] [--seconds S] [--seed K] [--cap BYTES] [--samples DIR]
#                   [--targets "nbin aedat4 ..."] [--nice N] [--note TEXT]
#
# --execs (default 100000) and --seconds (default: none) both bound a target's run; --samples
# adds real recordings (*.bin, *.aedat, *.aedat4) to the seed corpus. Runs at nice 19 unless
# --nice says otherwise. Each line also records the command and --note (e.g. the host's load).
set -euo pipefail
cd "$(dirname "$0")/.."
command="scripts/fuzz.sh$(printf " %q" "$@")"
note=""
execs=100000 seconds=inf seed=1 cap=$((64 << 20)) samples="" targets="nbin aedat2 aedat3 aedat4 idx cifar spec safetensors" niceness=19
while [ $# -gt 0 ]; do
  case "$1" in
    --execs) execs="$2" ;;
    --seconds) seconds="$2" ;;
    --seed) seed="$2" ;;
    --cap) cap="$2" ;;
    --samples) samples="$2" ;;
    --targets) targets="$2" ;;
    --nice) niceness="$2" ;;
    --note) note="$2" ;;
    *) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift 2
done
# FUZZ_SKIP_BUILD=1 uses the binary already built (while another cargo build holds the lock).
[ "${FUZZ_SKIP_BUILD:-}" = 1 ] || cargo build --release -p dualstream-fuzz >&2
out=benches/results/fuzz.jsonl
json_string() { node -e 'process.stdout.write(JSON.stringify(process.argv[1]))' "$1"; }
commit=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
status=0
for target in $targets; do
  args=(--execs "$execs" --seed "$seed" --cap "$cap" --crashes target/fuzz-crashes)
  [ "$seconds" != inf ] && args+=(--seconds "$seconds")
  if [ "$target" = safetensors ]; then
    line=$(nice -n "$niceness" npx tsx scripts/fuzz-safetensors.ts "${args[@]}") || status=1
  else
    [ -n "$samples" ] && args+=(--samples "$samples")
    line=$(nice -n "$niceness" target/release/dualstream-fuzz "$target" "${args[@]}") || status=1
  fi
  if [ -z "$line" ]; then
    line="{\"target\":\"$target\",\"aborted\":true}"
    status=1
  fi
  line="${line%\}},\"command\":$(json_string "$command"),\"note\":$(json_string "$note"),\"commit\":\"$commit\",\"date\":\"$(date -u +%Y-%m-%dT%H:%M:%SZ)\",\"samples\":$([ -n "$samples" ] && echo true || echo false)}"
  echo "$line" | tee -a "$out"
done
exit $status
