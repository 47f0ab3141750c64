#!/usr/bin/env bash
# Regenerates the SpikingJelly reference fixtures in crates/core/tests/fixtures/spikingjelly/.
#
# Python is needed only to REGENERATE the fixtures; the Rust test
# (crates/core/tests/integration/spikingjelly.rs) reads the committed JSON and needs no Python.
#
# Environment choice
# ------------------
# A virtual environment in <repo>/.venv-reference (git-ignored) with, from PyPI:
#   torch==2.5.1, torchvision==0.20.1 (spikingjelly depends on it), spikingjelly==0.0.0.0.14
# on the machine's python3 (3.11 here; torch 2.5.1 has wheels for CPython 3.9-3.12).
# PyPI's Linux x86-64 torch wheel is CUDA-built: it pulls ~2.7 GB of nvidia-* wheels besides
# the 0.9 GB torch wheel, and `import torch` fails without them (checked: a --no-deps install
# dies in _preload_cuda_deps), so they are installed although everything runs on the CPU.
# Measured on the project's machine: the torch wheel downloads in ~15 s, the whole install
# takes ~2-3 minutes, and the venv is ~5.4 GB. That is practical, so we do not use Debian's
# python3-torch 1.13 (older torch, and a second Python). Only the CPU is used (float32).
#
# Usage: scripts/reference/make-fixtures.sh            (create/reuse the venv, write fixtures)
#        PYTHON=python3.11 scripts/reference/make-fixtures.sh
#        scripts/reference/make-fixtures.sh --recreate  (delete and recreate the venv first)
#        scripts/reference/make-fixtures.sh --venv-only (only create the venv, for bench:compare)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="$ROOT/.venv-reference"
PYTHON="${PYTHON:-python3}"
OUT="$ROOT/crates/core/tests/fixtures/spikingjelly"

TORCH_VERSION=2.5.1
TORCHVISION_VERSION=0.20.1
SPIKINGJELLY_VERSION=0.0.0.0.14

if [[ "${1:-}" == "--recreate" ]]; then
  rm -rf "$VENV"
fi
VENV_ONLY=0
if [[ "${1:-}" == "--venv-only" ]]; then
  VENV_ONLY=1   # just the environment, e.g. for `npm run bench:compare`
fi

if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c "import torch, spikingjelly" 2>/dev/null; then
  echo "creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))"
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install --upgrade pip >/dev/null
  "$VENV/bin/pip" install \
    "torch==$TORCH_VERSION" \
    "torchvision==$TORCHVISION_VERSION" \
    "spikingjelly==$SPIKINGJELLY_VERSION" \
    "numpy<3"
fi

if [[ $VENV_ONLY == 1 ]]; then
  echo "$VENV is ready"
  exit 0
fi

mkdir -p "$OUT"
# Stale fixtures of renamed cases must not linger.
rm -f "$OUT"/*.json
"$VENV/bin/python" "$ROOT/scripts/reference/make_fixtures.py" --out "$OUT"
