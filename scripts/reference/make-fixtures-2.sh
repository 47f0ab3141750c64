#!/usr/bin/env bash
# Writes the SpikingJelly 2 reference fixtures in crates/core/tests/fixtures/spikingjelly-2/
# (options the first fixture set does not cover: the Erf, SoftSign, PiecewiseExp and
# PiecewiseLeakyReLU surrogates; conv bias, BN without affine parameters, ceil-mode pooling and
# average pooling without the padding in its divisor). Uses the interop environment of
# scripts/python/setup-venv.sh (torch and spikingjelly 2.0.0 pinned in requirements.txt); every
# fixture records the generator's versions. The first set (tests/fixtures/spikingjelly/, from
# spikingjelly 0.0.0.0.14) is not touched.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
PY="${DUALSTREAM_PYTHON:-$("$ROOT/scripts/python/setup-venv.sh")}"
OUT="$ROOT/crates/core/tests/fixtures/spikingjelly-2"
mkdir -p "$OUT"
rm -f "$OUT"/*.json
ONLY=surrogate_v2,options_v2 "$PY" "$ROOT/scripts/reference/make_fixtures.py" --out "$OUT"
