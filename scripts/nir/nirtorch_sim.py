"""Runs a NIR file with the official `nirtorch` graph executor (`nirtorch.nir_to_torch`, which
wires the nodes into a torch.fx module that sums the edges into a node and threads a state dict
through the steps), with SpikingJelly 2.0.0 modules for the nodes SpikingJelly has and small
torch modules for the NIR primitives it lacks (Threshold, Scale, SumPool2d). An outside
simulator of dualstream's exported files, Threshold joins included.

usage: nirtorch_sim.py FILE.nir INPUTS.f32 N T C H W [--labels LABELS.u8] [--dt 1e-4] [--batch 500]

INPUTS.f32 holds N static samples [N, C, H, W] (little-endian float32) fed at every one of the
T steps. Without --labels it prints JSON {outputs: [N][T][K]}, the per-step output; with
--labels, {accuracy, count, predictions}, the prediction being the argmax of the time-mean
output. Samples run in batches; every batch starts from the initial state (state None).

Node map (NIR definitions, one forward-Euler step of `dt` per simulation step):
  Conv2d, Affine, Linear, AvgPool2d, Flatten: spikingjelly.activation_based.layer modules
    (Flatten's dims shifted by one: NIR shapes have no batch axis);
  IF (r = 1/dt): neuron.IFNode, v += x; LIF (v_leak = v_reset, r = 1 or tau/dt): neuron.LIFNode
    with tau/dt and decay_input r == 1. NIR fires when v > v_threshold, SpikingJelly when
    v >= its threshold: the node gets the next float32 above v_threshold, so that its rule is
    NIR's exactly in float32 arithmetic;
  Threshold: z = 1 where x > threshold (NIR's Heaviside), Scale: x * scale,
  SumPool2d: the window sums (average pooling with divisor 1).
"""
import argparse
import json

import numpy as np
import torch

torch.set_grad_enabled(False)


def _uniform(value, what):
    unique = np.unique(np.asarray(value))
    if unique.size != 1:
        raise ValueError(f'{what}: expected the same value for every neuron, got {unique.size} values')
    return float(unique.item())


def _close(a, b):
    return bool(np.isclose(a, b, rtol=1e-6, atol=1e-12))


def _pair(v):
    v = np.atleast_1d(np.asarray(v)).astype(int)
    return (int(v[0]), int(v[-1]))


def _above(threshold):
    """The smallest float32 greater than `threshold` (as float32): x >= it iff x > threshold."""
    return float(np.nextafter(np.float32(threshold), np.float32(np.inf)))


class Threshold(torch.nn.Module):
    def __init__(self, threshold):
        super().__init__()
        self.register_buffer('threshold', torch.from_numpy(np.asarray(threshold, dtype=np.float32)))

    def forward(self, x):
        return (x > self.threshold).to(x.dtype)


class Scale(torch.nn.Module):
    def __init__(self, scale):
        super().__init__()
        self.register_buffer('scale', torch.from_numpy(np.asarray(scale, dtype=np.float32)))

    def forward(self, x):
        return x * self.scale


class SumPool2d(torch.nn.Module):
    def __init__(self, kernel, stride, padding):
        super().__init__()
        self.kernel, self.stride, self.padding = kernel, stride, padding

    def forward(self, x):
        return torch.nn.functional.avg_pool2d(x, self.kernel, self.stride, self.padding, divisor_override=1)


class Neuron(torch.nn.Module):
    """A SpikingJelly neuron whose membrane is nirtorch's state: `state` None starts it at its
    reset value, and the returned state is the membrane after this step."""

    def __init__(self, node):
        super().__init__()
        self.node = node

    def forward(self, x, state=None):
        self.node.reset()
        if state is not None:
            self.node.v = state
        z = self.node(x)
        return z, self.node.v


def node_map(dt):
    from spikingjelly.activation_based import layer, neuron

    def conv2d(n):
        w = n.weight
        m = layer.Conv2d(w.shape[1] * int(n.groups), w.shape[0], tuple(w.shape[-2:]), stride=_pair(n.stride),
                         padding=_pair(n.padding), dilation=_pair(n.dilation), groups=int(n.groups), bias=True)
        m.weight.data = torch.from_numpy(np.asarray(w, dtype=np.float32))
        m.bias.data = torch.from_numpy(np.asarray(n.bias, dtype=np.float32))
        return m

    def affine(n):
        m = layer.Linear(n.weight.shape[-1], n.weight.shape[-2], bias=True)
        m.weight.data = torch.from_numpy(np.asarray(n.weight, dtype=np.float32))
        m.bias.data = torch.from_numpy(np.asarray(n.bias, dtype=np.float32))
        return m

    def linear(n):
        m = layer.Linear(n.weight.shape[-1], n.weight.shape[-2], bias=False)
        m.weight.data = torch.from_numpy(np.asarray(n.weight, dtype=np.float32))
        return m

    def flatten(n):
        start = n.start_dim + 1 if n.start_dim >= 0 else n.start_dim
        end = n.end_dim + 1 if n.end_dim >= 0 else n.end_dim
        return layer.Flatten(start, end)

    def avgpool(n):
        return layer.AvgPool2d(_pair(n.kernel_size), _pair(n.stride), _pair(n.padding))

    def sumpool(n):
        return SumPool2d(_pair(n.kernel_size), _pair(n.stride), _pair(n.padding))

    def if_node(n):
        r = _uniform(n.r, 'IF.r')
        if not _close(r * dt, 1.0):
            raise ValueError(f'IF.r = {r}: expected 1/dt = {1 / dt}')
        return Neuron(neuron.IFNode(v_threshold=_above(_uniform(n.v_threshold, 'IF.v_threshold')),
                                    v_reset=_uniform(n.v_reset, 'IF.v_reset')))

    def lif(n):
        tau = _uniform(n.tau, 'LIF.tau') / dt
        r = _uniform(n.r, 'LIF.r')
        v_reset = _uniform(n.v_reset, 'LIF.v_reset')
        if not _close(_uniform(n.v_leak, 'LIF.v_leak'), v_reset):
            raise ValueError('LIF.v_leak: expected v_reset (SpikingJelly leaks towards its reset)')
        if not (_close(r, 1.0) or _close(r, tau)):
            raise ValueError(f'LIF.r = {r}: expected 1 or tau/dt = {tau}')
        return Neuron(neuron.LIFNode(tau=tau, decay_input=_close(r, 1.0), v_reset=v_reset,
                                     v_threshold=_above(_uniform(n.v_threshold, 'LIF.v_threshold'))))

    import nir
    return {
        nir.Conv2d: conv2d,
        nir.Affine: affine,
        nir.Linear: linear,
        nir.Flatten: flatten,
        nir.AvgPool2d: avgpool,
        nir.SumPool2d: sumpool,
        nir.IF: if_node,
        nir.LIF: lif,
        nir.Threshold: lambda n: Threshold(n.threshold),
        nir.Scale: lambda n: Scale(n.scale),
    }


def load(file, dt=1e-4):
    """The NIR file as nirtorch's executable torch.fx module: (x, state) -> (output, state)."""
    import nirtorch
    return nirtorch.nir_to_torch(file, node_map(dt))


def run(module, x, T):
    """x: [N, ...] static samples fed at each of T steps; returns [T, N, K] per-step outputs."""
    state, steps = None, []
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    for _ in range(T):
        y, state = module(xt, state)
        steps.append(y.reshape(len(x), -1).numpy().copy())
    return np.stack(steps)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('file')
    ap.add_argument('inputs')
    ap.add_argument('shape', nargs=5, type=int)
    ap.add_argument('--labels')
    ap.add_argument('--dt', type=float, default=1e-4)
    ap.add_argument('--batch', type=int, default=500)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    n, T, c, h, w = a.shape
    x = np.fromfile(a.inputs, dtype='<f4', count=n * c * h * w).reshape(n, c, h, w)
    module = load(a.file, a.dt)
    out = np.concatenate([run(module, x[i:i + a.batch], T) for i in range(0, n, a.batch)], axis=1)
    if a.labels is None:
        print(json.dumps({'outputs': out.transpose(1, 0, 2).tolist()}))
        return
    y = np.fromfile(a.labels, dtype=np.uint8)[:n]
    predictions = out.mean(0).argmax(-1)
    print(json.dumps({'accuracy': float((predictions == y).mean()), 'count': n,
                      'predictions': predictions.tolist()}))


if __name__ == '__main__':
    main()
