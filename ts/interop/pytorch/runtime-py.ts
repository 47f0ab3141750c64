// The fixed part of an exported model.py: the block classes and layer helpers that the
// generated network definition (codegen.ts) calls. Python source kept as text because the npm
// package ships compiled JavaScript only; it runs under torch + SpikingJelly, never in Node.
export const MODEL_RUNTIME_PY = `
import json
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate

# ---------------------------------------------------------------------------------------------
# Surrogates. SpikingJelly has Sigmoid, ATan and PiecewiseQuadratic with dualstream's alpha;
# SuperSpike (fast sigmoid, sg'(x) = 1 / (alpha |x| + 1)^2) is written here.


class _SuperSpikeFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, alpha):
        ctx.save_for_backward(x)
        ctx.alpha = alpha
        return (x >= 0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output / (ctx.alpha * x.abs() + 1.0) ** 2, None


class SuperSpike(nn.Module):
    def __init__(self, alpha=100.0):
        super().__init__()
        self.alpha = alpha

    def forward(self, x):
        return _SuperSpikeFunction.apply(x, self.alpha)


# ---------------------------------------------------------------------------------------------
# Neurons (multi-step, torch backend) and layers with dualstream's defaults made explicit.


def if_node(v_threshold, v_reset, detach_reset, surrogate_function):
    return neuron.IFNode(v_threshold=v_threshold, v_reset=v_reset, detach_reset=detach_reset,
                         surrogate_function=surrogate_function, step_mode="m")


def lif(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate_function):
    return neuron.LIFNode(tau=tau, decay_input=decay_input, v_threshold=v_threshold,
                          v_reset=v_reset, detach_reset=detach_reset,
                          surrogate_function=surrogate_function, step_mode="m")


def plif(tau, decay_input, v_threshold, v_reset, detach_reset, surrogate_function):
    """Parametric LIF: 1/tau = sigmoid(w), w learnt (starts at -log(tau - 1))."""
    return neuron.ParametricLIFNode(init_tau=tau, decay_input=decay_input,
                                    v_threshold=v_threshold, v_reset=v_reset,
                                    detach_reset=detach_reset,
                                    surrogate_function=surrogate_function, step_mode="m")


def conv2d(in_channels, out_channels, kernel_size, stride, padding, dilation, groups, bias):
    return layer.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                        dilation=dilation, groups=groups, bias=bias, step_mode="m")


def batch_norm2d(num_features, eps, momentum, init_weight=1.0, affine=True):
    """BN over T*N*H*W; init_weight 0 zero-initialises a residual branch's last BN."""
    bn = layer.BatchNorm2d(num_features, eps=eps, momentum=momentum, affine=affine, step_mode="m")
    if affine:
        nn.init.constant_(bn.weight, init_weight)
    return bn


def linear(in_features, out_features, bias):
    return layer.Linear(in_features, out_features, bias=bias, step_mode="m")


def max_pool2d(kernel_size, stride, padding, ceil_mode=False):
    return layer.MaxPool2d(kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                           step_mode="m")


def avg_pool2d(kernel_size, stride, padding, ceil_mode=False, count_include_pad=True):
    return layer.AvgPool2d(kernel_size, stride=stride, padding=padding, ceil_mode=ceil_mode,
                           count_include_pad=count_include_pad, step_mode="m")


def dropout(p):
    # One mask per forward, shared by all T steps.
    return layer.Dropout(p, step_mode="m")


class GlobalAvgPool(nn.Module):
    """[T, N, C, H, W] -> [T, N, C]."""

    def forward(self, x):
        return x.mean((-2, -1))


def flatten():
    """[T, N, C, H, W] -> [T, N, C*H*W]."""
    return layer.Flatten(step_mode="m")


# ---------------------------------------------------------------------------------------------
# Token layers of spiking transformers, on [T, N, L, C] (L tokens of C channels, channels last).


class BatchNorm1dTokens(nn.BatchNorm1d):
    """BN over the channels of [T, N, L, C], statistics over T, N and L: SpikingJelly's
    BatchNorm1d on [T*N, C, L], the same parameters and statistics."""

    def forward(self, x):
        return super().forward(x.reshape(-1, x.shape[-1])).reshape(x.shape)


def batch_norm1d(num_features, eps, momentum, init_weight=1.0):
    bn = BatchNorm1dTokens(num_features, eps=eps, momentum=momentum)
    nn.init.constant_(bn.weight, init_weight)
    return bn


class Tokens(nn.Module):
    """[T, N, C, H, W] -> [T, N, H*W, C], one token per position (row-major)."""

    def forward(self, x):
        return x.flatten(3).transpose(-1, -2).contiguous()


class TokenMean(nn.Module):
    """[T, N, L, C] -> [T, N, C]."""

    def forward(self, x):
        return x.mean(-2)


class SpikingAttention(nn.Module):
    """Spikformer's attention product on [T, N, L, 3C] (Q, K, V side by side, each with its
    heads side by side): per head scale * Q K^T V, no softmax; [T, N, L, C] out."""

    def __init__(self, dim, heads, scale):
        super().__init__()
        self.dim = dim
        self.heads = heads
        self.scale = scale

    def forward(self, x):
        t, n, l, _ = x.shape
        d = self.dim // self.heads

        def split(z):
            return z.reshape(t, n, l, self.heads, d).transpose(2, 3)

        q, k, v = (split(z) for z in x.split(self.dim, dim=-1))
        y = (q @ k.transpose(-2, -1)) @ v * self.scale
        return y.transpose(2, 3).reshape(t, n, l, self.dim)


# ---------------------------------------------------------------------------------------------
# Residual blocks.


def join(connect, s, x):
    """The element-wise g(S, X) of SEW and dual-stream blocks (S: branch, X: shortcut)."""
    if connect == "add":
        return s + x
    if connect == "and":
        return s * x
    if connect == "iand":
        return (1.0 - s) * x
    if connect == "or":
        return s + x - s * x
    if connect == "xor":
        return s + x - 2.0 * s * x
    raise ValueError(f"unknown connect {connect!r}")


class ResidualPaths(nn.Module):
    """A branch and its shortcut (the identity when None) over the same input."""

    def __init__(self, branch, shortcut):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut

    def paths(self, x):
        return self.branch(x), x if self.shortcut is None else self.shortcut(x)


class SEWBlock(ResidualPaths):
    """SEW residual block: O = g(branch(X), shortcut(X)), the branch ending with its neuron."""

    def __init__(self, branch, shortcut, connect):
        super().__init__(branch, shortcut)
        self.connect = connect

    def forward(self, x):
        return join(self.connect, *self.paths(x))


class SpikingResNetBlock(ResidualPaths):
    """Spiking ResNet block: O = SN_res(branch(X) + shortcut(X)), the branch without a neuron."""

    def __init__(self, branch, shortcut, residual):
        super().__init__(branch, shortcut)
        self.residual = residual

    def forward(self, x):
        s, skip = self.paths(x)
        return self.residual(s + skip)


class DualStreamBlock(nn.Module):
    """Dual-stream block on (O, A): S = branch(O); O' = g(S, shortcut(O)) (or
    SN_res(S + shortcut(O)) for connect "spikingResnet"); A' = projection(A) + S, the
    projection being the AAP's P (identity when None)."""

    def __init__(self, branch, shortcut, connect, projection, residual=None):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut
        self.connect = connect
        self.projection = projection
        self.residual = residual

    def forward(self, o, a):
        s = self.branch(o)
        x = o if self.shortcut is None else self.shortcut(o)
        o2 = self.residual(s + x) if self.connect == "spikingResnet" else join(self.connect, s, x)
        if a is None:
            return o2, None
        return o2, (a if self.projection is None else self.projection(a)) + s


class DualStream(nn.Module):
    """The dual-stream trunk: stages on (O, A) from O_0 = A_0 = the stem's spikes, then one FC
    shared by both heads, y_s = FC(pool(O_L)) and y_a = FC(pool(A_L)), per time step. Output
    [T, N, 2K] = [y_s | y_a] with the accumulation pathway running, [T, N, K] (y_s) without."""

    def __init__(self, stages, head, aap, head_pool):
        super().__init__()
        self.stages = nn.ModuleList(stages)
        self.head = head
        self.aap = aap
        self.head_pool = head_pool
        # Off for full-spike (fsnn) inference: A is not computed at all.
        self.aap_on = aap

    def pool(self, x):
        if self.head_pool == "gap":
            return x.mean((-2, -1))
        if self.head_pool == "tokens":
            return x.mean(-2)
        return x.flatten(2)

    def forward(self, x):
        o, a = x, (x if self.aap_on else None)
        for stage in self.stages:
            if isinstance(stage, DualStreamBlock):
                o, a = stage(o, a)
            else:
                o, a = stage(o), (None if a is None else stage(a))
        y_s = self.head(self.pool(o))
        if a is None:
            return y_s
        return torch.cat([y_s, self.head(self.pool(a))], dim=-1)


# ---------------------------------------------------------------------------------------------
# The network.


class Net(nn.Module):
    """layers applied in order to [T, N, ...] (a "direct" model repeats its [N, ...] input T
    times). The output is [T, N, heads * K]; logits() gives the time-mean prediction."""

    def __init__(self, layers, time_steps, encoding, input_shape):
        super().__init__()
        self.layers = nn.Sequential(*layers)
        self.time_steps = time_steps
        self.encoding = encoding
        self.input_shape = input_shape
        trunk = self.layers[-1]
        self.heads = 2 if isinstance(trunk, DualStream) and trunk.aap else 1

    def forward(self, x):
        # Membrane potentials start at rest for every batch.
        functional.reset_net(self)
        if self.encoding == "direct":
            x = x.unsqueeze(0).repeat(self.time_steps, *([1] * x.dim()))
        return self.layers(x)

    def logits(self, x, mode="fsnn"):
        """Time-mean logits [N, K]: "fsnn" is the full-spike network (accumulation pathway
        off, spike head), "dsnn" the accumulation head."""
        trunk = self.layers[-1]
        if mode == "fsnn":
            if self.heads == 2:
                trunk.aap_on = False
            try:
                return self(x).mean(0)
            finally:
                if self.heads == 2:
                    trunk.aap_on = True
        if mode != "dsnn" or self.heads != 2:
            raise ValueError(f"mode {mode!r}: expected 'fsnn'" + (" or 'dsnn'" if self.heads == 2 else ""))
        out = self(x).mean(0)
        return out[:, out.shape[-1] // 2:]


def load_weights(net, path):
    """Loads a safetensors state dict (names as this module's). BN's num_batches_tracked may be
    absent; anything else missing or unexpected is an error naming it."""
    from safetensors.torch import load_file

    state = load_file(path)
    missing, unexpected = net.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise KeyError(f"{path}: missing tensors {missing}, unexpected tensors {unexpected}")
    return net


def state_for_safetensors(net):
    """The state dict as float32 tensors, without BN's num_batches_tracked counters."""
    return {k: v.detach().float().contiguous().cpu() for k, v in net.state_dict().items()
            if not k.endswith("num_batches_tracked")}
`
