"""Simulates a NIR file with an outside framework and prints JSON {outputs, margins}.

usage: simulate.py FILE.nir INPUTS.f32 N T C H W --with numpy|spikingjelly|snntorch|norse [--dt 1e-4]

INPUTS.f32 holds N static samples [N, C, H, W] as little-endian float32, fed at every one of
the T steps (dualstream's direct encoding). outputs: [N][T][K] per-step output; margins: per
sample, the smallest distance of a neuron's membrane (or a Threshold's input) to its threshold
as the numpy interpreter sees it (only with --with numpy).
"""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('file')
    ap.add_argument('inputs')
    ap.add_argument('shape', nargs=5, type=int)
    ap.add_argument('--with', dest='framework', required=True)
    ap.add_argument('--dt', type=float, default=1e-4)
    a = ap.parse_args()
    n, T, c, h, w = a.shape
    x = np.fromfile(a.inputs, dtype='<f4').reshape(n, c, h, w)
    xs = np.broadcast_to(x, (T, n, c, h, w)).copy()
    import nir
    graph = nir.read(a.file)
    margins = None
    if a.framework == 'numpy':
        from nir_numpy import simulate
        outs, margins = [], []
        for i in range(n):
            o, m = simulate(graph, xs[:, i:i + 1], dt=a.dt)
            outs.append(o[:, 0])
            margins.append(m)
        out = np.stack(outs, 1)
    else:
        import torch
        torch.set_grad_enabled(False)
        if a.framework == 'spikingjelly':
            from spikingjelly.activation_based.nir_exchange import import_from_nir
            net = import_from_nir(graph, dt=a.dt)
        elif a.framework == 'snntorch':
            from snntorch.import_nir import import_from_nir
            net = import_from_nir(graph)
        elif a.framework == 'norse':
            from norse.torch.utils.import_nir import from_nir
            net = from_nir(graph, dt=a.dt, ignore_warnings=True)
        else:
            raise SystemExit(f'unknown framework {a.framework}')
        def run(batch):  # batch: [T, B, ...]
            state, steps = None, []
            for t in range(T):
                y, state = net(torch.from_numpy(batch[t]), state)
                steps.append(y.numpy())
            return np.stack(steps)

        if a.framework == 'snntorch':
            # snnTorch maps NIR's Flatten(start_dim=0) to torch's literally, so it runs
            # unbatched samples (as its own writer traces them).
            from snntorch import utils

            def sample(i):
                utils.reset(net)  # its neurons keep their state inside (init_hidden)
                return run(xs[:, i])

            out = np.stack([sample(i) for i in range(n)], 1)
        else:
            out = run(xs)
    print(json.dumps({'outputs': out.transpose(1, 0, *range(2, out.ndim)).reshape(n, T, -1).tolist(),
                      'margins': margins}))


if __name__ == '__main__':
    main()
