"""Classifies images with a NIR file run by the numpy NIR interpreter (nir_numpy.py) and prints
JSON {accuracy, count, predictions}: the outside simulation of an exported network.

usage: accuracy.py FILE.nir IMAGES.f32 LABELS.u8 N T C H W [--dt 1e-4] [--chunk 250]

Images are N static samples [N, C, H, W] (little-endian float32) fed at every one of T steps;
the prediction is the argmax of the time-mean output.
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from nir_numpy import simulate  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('file')
    ap.add_argument('images')
    ap.add_argument('labels')
    ap.add_argument('shape', nargs=5, type=int)
    ap.add_argument('--dt', type=float, default=1e-4)
    ap.add_argument('--chunk', type=int, default=250)
    a = ap.parse_args()
    n, T, c, h, w = a.shape
    x = np.fromfile(a.images, dtype='<f4').reshape(n, c, h, w)
    y = np.fromfile(a.labels, dtype=np.uint8)[:n]
    import nir
    graph = nir.read(a.file)
    predictions = []
    for i in range(0, n, a.chunk):
        xs = np.broadcast_to(x[i:i + a.chunk], (T,) + x[i:i + a.chunk].shape).copy()
        out, _ = simulate(graph, xs, dt=a.dt)
        predictions.extend(out.mean(0).argmax(-1).tolist())
    predictions = np.array(predictions)
    print(json.dumps({'accuracy': float((predictions == y).mean()), 'count': n,
                      'predictions': predictions.tolist()}))


if __name__ == '__main__':
    main()
