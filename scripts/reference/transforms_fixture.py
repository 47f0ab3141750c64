"""Writes crates/data/tests/fixtures/transforms-torchvision.json: what torchvision (v2) makes of
elastic distortion and random erasing, for crates/data/tests/integration/unit/transforms.rs
(no Python needed there). Recorded: `_get_gaussian_kernel1d` for several sigmas,
`gaussian_blur` of noise planes, `ElasticTransform.make_params`' noise (replayed from the same
torch seed) with its displacement and the transformed frames, `erase` of given boxes, and
`RandomErasing.make_params`' (area fraction, aspect ratio) tries with the box it chose.
Regenerate with

    "$(scripts/python/setup-venv.sh)" scripts/reference/transforms_fixture.py
"""

import importlib.metadata
import os

import torch
import torchvision.transforms.v2 as T
import torchvision.transforms.v2.functional as F
from torchvision.transforms.v2.functional._misc import _get_gaussian_kernel1d

from fixture_files import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "data", "tests", "fixtures", "transforms-torchvision.json")


def flat(t):
    return t.reshape(-1).tolist()


def kernel(sigma):
    k = int(8 * sigma + 1)
    if k % 2 == 0:
        k += 1
    return k


def main():
    torch.manual_seed(20261207)
    kernels = [{"sigma": s, "kernel": flat(_get_gaussian_kernel1d(kernel(s), s, torch.float32, "cpu"))} for s in [0.5, 1.0, 1.5, 4.0, 5.0]]

    blurs = []
    for h, w, sigma in [(12, 10, 1.0), (11, 14, 1.5), (28, 28, 3.0)]:
        noise = torch.rand(1, 1, h, w) * 2 - 1
        out = F.gaussian_blur(noise, [kernel(sigma)] * 2, [sigma, sigma])
        blurs.append({"height": h, "width": w, "sigma": sigma, "noise": flat(noise), "blurred": flat(out)})

    elastic = []
    for seed, (t, c, h, w), alpha, sigma in [(1, (2, 3, 12, 10), 20.0, 1.0), (2, (1, 1, 11, 14), 30.0, 1.5), (3, (1, 1, 28, 28), 68.0, 3.0), (4, (1, 2, 9, 8), 6.0, 0.0)]:
        frames = torch.rand(t, c, h, w)
        transform = T.ElasticTransform(alpha=alpha, sigma=sigma)
        torch.manual_seed(seed)
        params = transform.make_params([frames])
        torch.manual_seed(seed)
        # make_params draws the across noise, then the down noise, each uniform in [-1, 1).
        noise_x = torch.rand(1, 1, h, w) * 2 - 1
        noise_y = torch.rand(1, 1, h, w) * 2 - 1
        out = transform.transform(frames, params)
        displacement = params["displacement"]
        elastic.append({
            "shape": [t, c, h, w],
            "alpha": alpha,
            "sigma": sigma,
            "frames": flat(frames),
            "noiseX": flat(noise_x),
            "noiseY": flat(noise_y),
            # In pixels: grid_sample's [-1, 1] coordinates times size / 2.
            "dxPixels": flat(displacement[0, :, :, 0] * w / 2),
            "dyPixels": flat(displacement[0, :, :, 1] * h / 2),
            "out": flat(out),
        })

    erases = []
    frames = torch.rand(2, 3, 12, 10)
    for (i, j, bh, bw), value in [((2, 3, 4, 5), [0.0]), ((0, 0, 12, 1), [0.25, 0.5, 0.75]), ((5, 6, 3, 2), "random")]:
        v = torch.randn(3, bh, bw) if value == "random" else torch.tensor(value)[:, None, None]
        out = F.erase(frames, i, j, bh, bw, v)
        erases.append({"box": [i, j, bh, bw], "value": flat(v), "out": flat(out)})
    erase_frames = flat(frames)

    boxes = []
    h, w = 28, 20
    scale, ratio = (0.02, 0.9), (0.3, 3.3)
    transform = T.RandomErasing(p=1.0, scale=scale, ratio=ratio)
    image = torch.zeros(1, h, w)
    for seed in range(40):
        torch.manual_seed(seed)
        params = transform.make_params([image])
        torch.manual_seed(seed)
        tries = []
        # The draws of each try, replayed; after the accepted try the generator moves on to the
        # box's position, so later pairs are not tries (the reader stops at the first fit).
        for _ in range(10):
            fraction = torch.empty(1).uniform_(scale[0], scale[1]).item()
            aspect = torch.exp(torch.empty(1).uniform_(transform._log_ratio[0], transform._log_ratio[1])).item()
            tries.append([fraction, aspect])
        box = None if params["v"] is None else [params["h"], params["w"]]
        boxes.append({"tries": tries, "size": box})

    out = {
        "generator": "scripts/reference/transforms_fixture.py",
        "versions": {k: importlib.metadata.version(k) for k in ["torch", "torchvision"]},
        "kernels": kernels,
        "blurs": blurs,
        "elastic": elastic,
        "eraseFrames": erase_frames,
        "erases": erases,
        "erasingBoxes": {"height": h, "width": w, "scale": scale, "ratio": ratio, "cases": boxes},
    }
    write_json(OUT, out)
    print(f"wrote {OUT}: {len(boxes)} erasing boxes, {sum(b['size'] is None for b in boxes)} without a fit")


if __name__ == "__main__":
    main()
