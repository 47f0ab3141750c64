"""Writes the image-folder fixtures: a tiny ImageNet-style tree of JPEG/PNG files made by Pillow
(crates/data/tests/fixtures/imagefolder/) and imagefolder.json next to it with what Pillow and
torchvision make of it: torchvision.datasets.ImageFolder's (file, label) order, every image as
Pillow decodes it (`convert("RGB")`, ImageFolder's loader), the evaluation transform (Resize,
CenterCrop) and fixed-window resized crops (RandomResizedCrop's resize step), all as Pillow's
8-bit HWC output. crates/data/tests/integration/imagefolder.rs reads it; Python is needed only to regenerate it:

    "$(scripts/python/setup-venv.sh)" scripts/reference/imagefolder_fixture.py
"""

import importlib.metadata
import json
import os
import shutil

import numpy as np
import torchvision.transforms.functional as F
from PIL import Image
from torchvision import datasets, transforms

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURES = os.path.join(ROOT, "crates", "data", "tests", "fixtures")
TREE = os.path.join(FIXTURES, "imagefolder")

RESIZE, CROP = 24, 20


def picture(rng, h, w):
    # Smooth gradients plus a little noise and a sharp edge: what JPEG's DCT and chroma
    # subsampling meet in photographs.
    yy, xx = np.mgrid[0:h, 0:w]
    r = 255 * xx / max(w - 1, 1)
    g = 255 * yy / max(h - 1, 1)
    b = 128 + 100 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    img = np.stack([r, g, b], axis=-1) + rng.normal(0, 8, (h, w, 3))
    img[h // 3 : h // 2, w // 4 : w // 2] = [250, 20, 40]
    return np.clip(img, 0, 255).astype(np.uint8)


def save(rel, make):
    path = os.path.join(TREE, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    make(path)
    return rel


def main():
    shutil.rmtree(TREE, ignore_errors=True)
    rng = np.random.default_rng(20261206)
    rgb = lambda h, w: Image.fromarray(picture(rng, h, w), "RGB")  # noqa: E731
    files = []
    for split in ["train", "val"]:
        # Class folders sort by code point: "Bird" < "ant" < "cat" < "cat_2".
        files.append(save(f"{split}/cat/rgb-420.jpg", lambda p: rgb(30, 40).save(p, quality=90)))
        files.append(save(f"{split}/cat/rgb-444.JPEG", lambda p: rgb(37, 29).save(p, quality=85, subsampling=0)))
        files.append(save(f"{split}/cat/progressive.jpeg", lambda p: rgb(33, 45).save(p, quality=80, progressive=True)))
        files.append(save(f"{split}/ant/grey.jpg", lambda p: rgb(41, 26).convert("L").save(p, quality=90)))
        files.append(save(f"{split}/ant/nested/rgb.png", lambda p: rgb(25, 31).save(p)))
        files.append(save(f"{split}/Bird/cmyk.jpg", lambda p: rgb(28, 36).convert("CMYK").save(p, quality=95)))
        files.append(save(f"{split}/Bird/rgb16.png", lambda p: save_png16(p, picture(rng, 27, 22))))
        files.append(save(f"{split}/cat_2/grey16.png", lambda p: save_png16(p, picture(rng, 23, 30)[..., 1])))
        files.append(save(f"{split}/cat_2/palette.png", lambda p: rgb(26, 26).quantize(16).save(p)))
        files.append(save(f"{split}/cat_2/rgba.png", lambda p: save_rgba(p, picture(rng, 21, 34))))
        # Not an image extension: ImageFolder skips it.
        save(f"{split}/cat_2/notes.txt", lambda p: open(p, "w").write("not an image\n"))
    # Broken files, outside the tree: a JPEG cut short, text named .jpg, a PNG with a bad CRC.
    broken = os.path.join(FIXTURES, "imagefolder-broken")
    shutil.rmtree(broken, ignore_errors=True)
    os.makedirs(broken)
    whole = open(os.path.join(TREE, "train/cat/rgb-420.jpg"), "rb").read()
    open(os.path.join(broken, "truncated.jpg"), "wb").write(whole[: len(whole) // 3])
    open(os.path.join(broken, "text.jpg"), "w").write("hello, not a JPEG\n")
    png = bytearray(open(os.path.join(TREE, "train/ant/nested/rgb.png"), "rb").read())
    png[40] ^= 0xFF
    open(os.path.join(broken, "bad-data.png"), "wb").write(bytes(png))

    order = {}
    for split in ["train", "val"]:
        ds = datasets.ImageFolder(os.path.join(TREE, split))
        order[split] = {
            "classes": ds.classes,
            "samples": [[os.path.relpath(p, TREE), label] for p, label in ds.samples],
        }

    # The evaluation transform up to ToTensor: Pillow's 8-bit output, exact as integers (ToTensor
    # divides by 255; Normalize is checked separately).
    evaluation = transforms.Compose([transforms.Resize(RESIZE), transforms.CenterCrop(CROP)])
    images = []
    for rel in order["train"]["samples"]:
        path = os.path.join(TREE, rel[0])
        raw = Image.open(path)
        if raw.mode == "I;16":
            # Pillow clips 16-bit grey to 255 in convert("RGB"); dualstream keeps the high byte,
            # as Pillow itself does for 16-bit RGB, so the reference is made from the high bytes.
            img = Image.fromarray((np.asarray(raw) >> 8).astype(np.uint8)).convert("RGB")
        else:
            img = raw.convert("RGB")
        w, h = img.size
        crops = []
        for top, left, ch, cw, oh, ow in [(0, 0, h, w, 16, 16), (3, 5, h // 2, w // 2, 15, 18), (1, 2, h - 3, w - 4, 29, 37)]:
            out = np.asarray(F.resized_crop(img, top, left, ch, cw, [oh, ow]))
            crops.append({"top": top, "left": left, "height": ch, "width": cw, "size": [oh, ow], "hwc": out.ravel().tolist()})
        images.append({
            "file": rel[0],
            "mode": raw.mode,
            "width": w,
            "height": h,
            "rgb": np.asarray(img).ravel().tolist(),
            "evaluation": np.asarray(evaluation(img)).ravel().tolist(),
            "resizedCrops": crops,
        })

    out = {
        "generator": "scripts/reference/imagefolder_fixture.py",
        "versions": {k: importlib.metadata.version(k) for k in ["pillow", "torchvision", "numpy"]},
        "resize": RESIZE,
        "crop": CROP,
        "order": order,
        "images": images,
    }
    with open(os.path.join(FIXTURES, "imagefolder.json"), "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {len(images)} images; classes {order['train']['classes']}")


def save_png16(path, img8):
    # A 16-bit PNG (grey [H, W] or RGB [H, W, 3]) whose low bytes differ from the high ones.
    import struct
    import zlib

    h, w = img8.shape[:2]
    img16 = img8.astype(np.uint32) * 257 + (np.arange(img8.size).reshape(img8.shape) % 200)
    img16 = np.minimum(img16, 65535).reshape(h, -1)
    raw = b"".join(b"\x00" + img16[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind, data):
        c = struct.pack(">I", len(data)) + kind + data
        return c + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    colour = 2 if img8.ndim == 3 else 0
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, colour, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    open(path, "wb").write(png)


def save_rgba(path, img8):
    h, w, _ = img8.shape
    alpha = (np.arange(h * w).reshape(h, w, 1) * 7 % 256).astype(np.uint8)
    Image.fromarray(np.concatenate([img8, alpha], axis=-1), "RGBA").save(path)


if __name__ == "__main__":
    main()
