#!/usr/bin/env bash
# Creates (or reuses) the Python environment for the interop proofs and reference values:
# <repo>/.venv-interop with the pinned packages of scripts/python/requirements.txt (PyTorch,
# SpikingJelly, NIR, snnTorch, Norse, safetensors, h5py). The npm package itself never needs it.
#
# Usage: scripts/python/setup-venv.sh             create or reuse, print the interpreter's path
#        scripts/python/setup-venv.sh --recreate  delete it first
#        PYTHON=python3.11 scripts/python/setup-venv.sh
# Tests that need Python look for $DUALSTREAM_PYTHON, else <repo>/.venv-interop/bin/python.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
VENV="${DUALSTREAM_VENV:-$ROOT/.venv-interop}"
PYTHON="${PYTHON:-python3}"
REQ="$ROOT/scripts/python/requirements.txt"
STAMP="$VENV/.requirements"

if [[ "${1:-}" == "--recreate" ]]; then rm -rf "$VENV"; fi
if [[ -x "$VENV/bin/python" ]] && cmp -s "$REQ" "$STAMP"; then
  echo "$VENV/bin/python"
  exit 0
fi
echo "creating $VENV with $PYTHON ($("$PYTHON" --version 2>&1))" >&2
"$PYTHON" -m venv "$VENV"
"$VENV/bin/pip" install --quiet --upgrade pip >&2
# PyPI's Linux torch wheel is CUDA-built and pulls its nvidia-* wheels (several GB); only the
# CPU is used.
"$VENV/bin/pip" install --quiet -r "$REQ" >&2
"$VENV/bin/python" -c "import torch, spikingjelly, nir, nirtorch, snntorch, norse, safetensors, h5py" >&2
cp "$REQ" "$STAMP"
echo "$VENV/bin/python"
