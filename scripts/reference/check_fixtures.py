"""Independent cross-check of the neuron-only fixtures against the neuron formulas of docs/dual-stream-training.md.

Re-implements IF / LIF / PLIF forward and backward-through-time in float64 NumPy from our spec
semantics alone (no SpikingJelly, no torch) and compares with the SpikingJelly numbers stored in
the fixtures. It validates the spec mapping (reset modes, detach_reset, surrogates, PLIF's `w`,
SuperSpike-as-SoftSign) and is a readable reference for the engine's neuron code.

Usage: .venv-reference/bin/python scripts/reference/check_fixtures.py crates/core/tests/fixtures/spikingjelly
"""

import glob
import json
import math
import os
import sys

import numpy as np


def surrogate_grad(s, x):
    a = s["alpha"]
    t = s["type"]
    if t == "sigmoid":
        sg = 1.0 / (1.0 + np.exp(-a * x))
        return a * sg * (1.0 - sg)
    if t == "atan":
        return (a / 2.0) / (1.0 + (math.pi / 2.0 * a * x) ** 2)
    if t == "piecewiseQuadratic":
        return np.maximum(0.0, a - a * a * np.abs(x))
    if t == "superSpike":
        return 1.0 / (a * np.abs(x) + 1.0) ** 2
    raise ValueError(t)


def run_neuron(n, x, gy, w=None):
    T = x.shape[0]
    vth = n["vThreshold"]
    soft = n["vReset"] is None
    vr = 0.0 if soft else n["vReset"]
    nd = 0.0 if n["detachReset"] else 1.0
    kind = n["type"]
    if kind == "lif":
        k = 1.0 / n["tau"]
    elif kind == "plif":
        k = 1.0 / (1.0 + math.exp(-w))
    decay_input = n.get("decayInput", True)

    v = np.full(x.shape[1:], vr)
    vs, hs, ss = [], [], []
    for t in range(T):
        vs.append(v)
        if kind == "if":
            h = v + x[t]
        elif decay_input:
            h = v + (x[t] - (v - vr)) * k
        else:
            h = v - (v - vr) * k + x[t]
        s = (h >= vth).astype(np.float64)
        v = h - vth * s if soft else h * (1 - s) + vr * s
        hs.append(h)
        ss.append(s)

    gx = np.zeros_like(x)
    gv = np.zeros(x.shape[1:])
    gk = 0.0
    for t in reversed(range(T)):
        h, s, vprev = hs[t], ss[t], vs[t]
        sg = surrogate_grad(n["surrogate"], h - vth)
        if soft:
            dvdh = 1.0 - nd * vth * sg
        else:
            dvdh = (1.0 - s) + nd * (vr - h) * sg
        gh = gy[t] * sg + gv * dvdh
        if kind == "if":
            gx[t] = gh
            gv = gh
        elif decay_input:
            gx[t] = gh * k
            gv = gh * (1 - k)
            gk += np.sum(gh * (x[t] - (vprev - vr)))
        else:
            gx[t] = gh
            gv = gh * (1 - k)
            gk += np.sum(gh * (-(vprev - vr)))
    gw = gk * k * (1 - k) if kind == "plif" else None
    return np.stack(ss), gx, gw


def arr(t):
    return np.asarray(t["data"], dtype=np.float64).reshape(t["shape"])


def rel_err(a, b):
    return float(np.max(np.abs(a - b)) / max(float(np.max(np.abs(b))), 1e-6))


def main():
    folder = sys.argv[1]
    worst, count = 0.0, 0
    for path in sorted(glob.glob(os.path.join(folder, "neuron_*.json"))):
        f = json.load(open(path))
        n = f["spec"]["layers"][0]
        w = f["params"]["layers.0.w"]["data"][0] if n["type"] == "plif" else None
        y, gx, gw = run_neuron(n, arr(f["input"]), arr(f["gradOutput"]), w)
        errs = [rel_err(y, arr(f["output"])), rel_err(gx, arr(f["gradInput"]))]
        if gw is not None:
            errs.append(rel_err(np.array([gw]), arr(f["grads"]["layers.0.w"])))
        e = max(errs)
        worst = max(worst, e)
        count += 1
        status = "ok" if e <= 1e-4 else "MISMATCH"
        print(f"{status:8s} {f['name']}: rel err {e:.2e}")
    print(f"{count} neuron fixtures checked, worst relative error {worst:.2e}")
    if count == 0 or worst > 1e-4:
        sys.exit(1)


if __name__ == "__main__":
    main()
