"""Writes crates/data/tests/fixtures/spikingjelly-frames.json: event streams and the frames that
SpikingJelly's integrate_events_by_fixed_frames_number (split_by 'number' and 'time') and
integrate_events_by_fixed_duration make of them. crates/data/tests/integration/spikingjelly_frames.rs reads
it; Python is needed only to regenerate it:

    .venv-reference/bin/python scripts/reference/frames_fixture.py
"""

import importlib.metadata
import json
import os

import numpy as np
from spikingjelly.datasets import integrate_events_by_fixed_duration, integrate_events_by_fixed_frames_number

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "data", "tests", "fixtures", "spikingjelly-frames.json")


def stream(rng, n, width, height, jitter):
    # Bursty timestamps (many equal ones), optionally a few out of order as real sensors give.
    t = np.cumsum(rng.integers(0, 40, size=n) * (rng.random(n) < 0.7)).astype(np.int64) + 1000
    if jitter:
        idx = rng.choice(n, size=n // 50, replace=False)
        t[idx] -= rng.integers(1, 30, size=idx.size)
    return {
        "t": t,
        "x": rng.integers(0, width, size=n).astype(np.int64),
        "y": rng.integers(0, height, size=n).astype(np.int64),
        "p": rng.integers(0, 2, size=n).astype(np.int64),
    }


def main():
    rng = np.random.default_rng(20261127)
    cases = []
    for name, n, width, height, jitter in [("sorted", 3000, 16, 12, False), ("jittered", 2501, 9, 7, True), ("tiny", 7, 3, 2, False)]:
        ev = stream(rng, n, width, height, jitter)
        span = int(ev["t"][-1] - ev["t"][0])
        outputs = []
        for split, frames in [("number", 5), ("number", 16), ("time", 4)]:
            if name == "tiny" and split == "time":
                continue
            f = integrate_events_by_fixed_frames_number(ev, split, frames, height, width)
            outputs.append({"split": split, "frames": frames, "shape": list(f.shape), "data": f.astype(int).ravel().tolist()})
        duration = max(1, span // 6)
        f = integrate_events_by_fixed_duration(ev, duration, height, width)
        outputs.append({"split": "duration", "durationUs": duration, "shape": list(f.shape), "data": f.astype(int).ravel().tolist()})
        cases.append({
            "name": name, "width": width, "height": height,
            "events": {k: v.tolist() for k, v in ev.items()},
            "outputs": outputs,
        })
    doc = {"generator": {"spikingjelly": importlib.metadata.version("spikingjelly"), "numpy": np.__version__}, "cases": cases}
    with open(OUT, "w") as fh:
        json.dump(doc, fh, separators=(",", ":"))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
