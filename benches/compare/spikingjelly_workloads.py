"""The reference workloads of benches/workloads.ts, built in SpikingJelly (multi-step mode, torch
backend, 2 threads), timed the same way: median training step (forward, BPTT, SGD with momentum)
and inference batch, and the process's peak resident memory.

SF and SF384 (Spikformer) need SpikingJelly 2 (its `activation_based.model.spikformer`); W1, W2
and W3 run on 0.0.0.0.14 or 2.

Usage: python spikingjelly_workloads.py WORKLOAD INPUT.bin STEPS [T N]
(T and N override the workload's time steps and batch size, for the scaling runs.)
INPUT.bin holds the batch dualstream uses: float32 x (T, N, ...) or (N, ...), then uint32 labels.
Prints one JSON line."""
import importlib.metadata
import json
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
from spikingjelly.activation_based import functional, layer, neuron, surrogate

torch.set_num_threads(2)
torch.manual_seed(1)


def lif():
    return neuron.LIFNode(tau=2.0, surrogate_function=surrogate.ATan(alpha=2.0), detach_reset=True,
                          step_mode="m", backend="torch")


def stem(cin, cout):
    return [layer.Conv2d(cin, cout, 3, padding=1, bias=False), layer.BatchNorm2d(cout), lif()]


class SewIand(nn.Module):
    """SEW BasicBlock, g = IAND: O = (1 - S) * X with S = LIF(BN(conv(LIF(BN(conv(X))))))."""

    def __init__(self, c):
        super().__init__()
        self.branch = nn.Sequential(*stem(c, c), *stem(c, c))

    def forward(self, x):
        return (1.0 - self.branch(x)) * x


def plif():
    return neuron.ParametricLIFNode(init_tau=2.0, surrogate_function=surrogate.ATan(alpha=2.0),
                                    detach_reset=True, step_mode="m")


class SewAdd(nn.Module):
    """SEW BasicBlock of the 7B-Net, g = ADD: O = S + X with S = PLIF(BN(conv(PLIF(BN(conv(X))))))."""

    def __init__(self, c):
        super().__init__()
        self.branch = nn.Sequential(layer.Conv2d(c, c, 3, padding=1, bias=False), layer.BatchNorm2d(c), plif(),
                                    layer.Conv2d(c, c, 3, padding=1, bias=False), layer.BatchNorm2d(c), plif())
        # As the zoo's zeroInit: the branch's last BN starts at weight 0.
        nn.init.zeros_(self.branch[4].weight)

    def forward(self, x):
        return self.branch(x) + x


class GlobalAvgPool(nn.Module):
    def forward(self, x):
        return x.mean((-2, -1))


def spikformer(large):
    """SpikingJelly 2's own Spikformer (ADD residuals), as benches/workloads.ts's sf()."""
    from spikingjelly.activation_based.model import spikformer as sf

    if large:
        net = sf.Spikformer(T=4, in_channels=3, img_size_h=32, img_size_w=32, patch_size=4,
                            num_classes=10, embed_dims=384, num_heads=12, mlp_ratio=4, depths=4)
        return net, 4, 8, (3, 32, 32), "direct"
    net = sf.Spikformer(T=4, in_channels=1, img_size_h=28, img_size_w=28, patch_size=4,
                        num_classes=10, embed_dims=64, num_heads=4, mlp_ratio=2, depths=2)
    return net, 4, 32, (1, 28, 28), "direct"


def build(name):
    if name in ("SF", "SF384"):
        return spikformer(name == "SF384")
    if name == "W1":
        net = nn.Sequential(*stem(1, 32), SewIand(32), layer.MaxPool2d(2), *stem(32, 64), SewIand(64),
                            layer.MaxPool2d(2), layer.Flatten(), layer.Linear(3136, 10))
        return net, 4, 32, (1, 28, 28), "direct"
    if name == "W2":
        mods = stem(2, 32)
        for _ in range(6):
            mods += [SewIand(32), layer.MaxPool2d(2)]
        net = nn.Sequential(*mods, layer.Flatten(), layer.Linear(32, 11))
        return net, 8, 8, (2, 64, 64), "sequence"
    if name == "W3":
        # SpikingJelly's SEW 7B-Net (DVS Gesture), as the zoo's sew7b: stem, {SEW ADD-MPk2s2}*7, GAP, FC11.
        mods = [layer.Conv2d(2, 32, 3, padding=1, bias=False), layer.BatchNorm2d(32), plif()]
        for _ in range(7):
            mods += [SewAdd(32), layer.MaxPool2d(2)]
        net = nn.Sequential(*mods, layer.SeqToANNContainer(GlobalAvgPool()), layer.Linear(32, 11))
        return net, 16, 8, (2, 128, 128), "sequence"
    raise SystemExit(f"unknown workload {name}: expected W1, W2, W3, SF or SF384")


def main():
    name, path, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
    net, t, n, sample, encoding = build(name)
    if len(sys.argv) > 5:
        t, n = int(sys.argv[4]), int(sys.argv[5])
    functional.set_step_mode(net, "m")
    raw = np.fromfile(path, dtype=np.uint8)
    per = int(np.prod(sample))
    count = (t if encoding == "sequence" else 1) * n * per
    x = torch.from_numpy(raw[: count * 4].view(np.float32).copy())
    y = torch.from_numpy(raw[count * 4:].view(np.uint32).astype(np.int64))
    if encoding == "sequence":
        x_seq = x.view(t, n, *sample)
    else:
        x_seq = x.view(n, *sample).unsqueeze(0).repeat(t, 1, 1, 1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
    train = []
    net.train()
    for i in range(steps + 2):
        t0 = time.perf_counter()
        out = net(x_seq).mean(0)
        loss = nn.functional.cross_entropy(out, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        functional.reset_net(net)
        if i >= 2:
            train.append((time.perf_counter() - t0) * 1000)
    infer = []
    net.eval()
    with torch.no_grad():
        for i in range(steps + 2):
            t0 = time.perf_counter()
            net(x_seq).mean(0)
            functional.reset_net(net)
            if i >= 2:
                infer.append((time.perf_counter() - t0) * 1000)
    print(json.dumps({
        "workload": name,
        "timeSteps": t,
        "batch": n,
        "trainStepMs": float(np.median(train)),
        "inferenceMs": float(np.median(infer)),
        "peakRssMiB": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "spikingjelly": importlib.metadata.version("spikingjelly"),
    }))


if __name__ == "__main__":
    main()
