"""Writes SpikingJelly reference fixtures for crates/core/tests/integration/spikingjelly.rs.

Run through scripts/reference/make-fixtures.sh (it creates the Python environment).

Every case is described by a model spec in OUR format (crates/core/src/spec.rs); this script
builds the equivalent SpikingJelly network (activation_based, step_mode='m', backend 'torch',
float32, CPU) from that spec, runs it, and dumps inputs, initial parameters/buffers, outputs and
gradients. Parameter names are mapped to ours (`layers.{i}.weight`, ...).

Spike-flip guard: a case is rejected and regenerated with the next seed when any neuron's
pre-spike potential H_t lies within MARGIN of its threshold (|H_t - V_th| < MARGIN), because
then a rounding difference between two correct implementations could flip a spike.
"""

import argparse
import copy
import importlib.metadata
import math
import os

import torch
import torch.nn as nn
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from spikingjelly.activation_based.model import sew_resnet

from fixture_files import write_fixture

MARGIN = 1e-3
MAX_ATTEMPTS = 2000
# Each neuron layer must fire at a rate within these bounds (over all steps and elements),
# so that the fixtures exercise both spiking and silent paths.
MIN_RATE, MAX_RATE = 0.03, 0.9

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

GENERATOR = {
    "spikingjelly": importlib.metadata.version("spikingjelly"),
    "torch": torch.__version__,
}


# ----------------------------------------------------------------------------------------------
# Spec helpers (our JSON format)


def neuron_spec(kind, surrogate_spec, v_reset=0.0, detach_reset=True, tau=2.0, decay_input=True,
                v_threshold=1.0):
    spec = {
        "type": kind,
        "vThreshold": v_threshold,
        "vReset": v_reset,
        "detachReset": detach_reset,
        "surrogate": surrogate_spec,
    }
    if kind in ("lif", "plif"):
        spec["tau"] = tau
        spec["decayInput"] = decay_input
    return spec


def conv(cin, cout, k, stride=1, padding=0, bias=True):
    return {"type": "conv2d", "inChannels": cin, "outChannels": cout, "kernelSize": [k, k],
            "stride": [stride, stride], "padding": [padding, padding], "bias": bias}


def bn(c):
    return {"type": "batchNorm2d", "numFeatures": c, "eps": 1e-5, "momentum": 0.1}


def linear(i, o, bias=True):
    return {"type": "linear", "inFeatures": i, "outFeatures": o, "bias": bias}


SURROGATES = {
    "sigmoid": {"type": "sigmoid", "alpha": 4.0},
    "atan": {"type": "atan", "alpha": 2.0},
    "pq": {"type": "piecewiseQuadratic", "alpha": 1.0},
    # SpikingJelly has no SuperSpike; its SoftSign(alpha) has derivative
    # alpha / (2 (1 + alpha |x|)^2), which for alpha = 2 equals SuperSpike's
    # 1 / (alpha |x| + 1)^2 with alpha = 2. So only alpha = 2 can be checked against it.
    "superspike": {"type": "superSpike", "alpha": 2.0},
}


# ----------------------------------------------------------------------------------------------
# Spec -> SpikingJelly modules


def make_surrogate(s):
    if s["type"] == "piecewiseLeakyRelu":
        return surrogate.PiecewiseLeakyReLU(w=float(s["w"]), c=float(s["c"]))
    t, a = s["type"], float(s["alpha"])
    if t == "sigmoid":
        return surrogate.Sigmoid(alpha=a)
    if t == "atan":
        return surrogate.ATan(alpha=a)
    if t == "piecewiseQuadratic":
        return surrogate.PiecewiseQuadratic(alpha=a)
    if t == "superSpike":
        assert a == 2.0, "SuperSpike is only reproducible (as SoftSign) for alpha = 2"
        return surrogate.SoftSign(alpha=2.0)
    if t == "erf":
        return surrogate.Erf(alpha=a)
    if t == "softSign":
        return surrogate.SoftSign(alpha=a)
    if t == "piecewiseExp":
        return surrogate.PiecewiseExp(alpha=a)
    raise ValueError(t)


def neuron_kwargs(s):
    kw = dict(v_threshold=float(s["vThreshold"]), v_reset=s["vReset"],
              detach_reset=bool(s["detachReset"]), surrogate_function=make_surrogate(s["surrogate"]),
              step_mode="m")
    if GENERATOR["spikingjelly"].startswith("0."):
        kw["backend"] = "torch"  # SpikingJelly 2 has no backend argument (torch only)
    if kw["v_reset"] is not None:
        kw["v_reset"] = float(kw["v_reset"])
    return kw


def make_neuron(s):
    kw = neuron_kwargs(s)
    if s["type"] == "if":
        return neuron.IFNode(**kw)
    if s["type"] == "lif":
        return neuron.LIFNode(tau=float(s["tau"]), decay_input=bool(s["decayInput"]), **kw)
    if s["type"] == "plif":
        return neuron.ParametricLIFNode(init_tau=float(s["tau"]), decay_input=bool(s["decayInput"]),
                                        **kw)
    raise ValueError(s["type"])


NEURON_TYPES = ("if", "lif", "plif")


def make_layer(s):
    t = s["type"]
    if t == "conv2d":
        return layer.Conv2d(s["inChannels"], s["outChannels"], tuple(s["kernelSize"]),
                            stride=tuple(s["stride"]), padding=tuple(s["padding"]),
                            groups=s.get("groups", 1), bias=s["bias"], step_mode="m")
    if t == "batchNorm2d":
        return layer.BatchNorm2d(s["numFeatures"], eps=s["eps"], momentum=s["momentum"],
                                 affine=s.get("affine", True), step_mode="m")
    if t == "linear":
        return layer.Linear(s["inFeatures"], s["outFeatures"], bias=s["bias"], step_mode="m")
    if t == "maxPool2d":
        return layer.MaxPool2d(tuple(s["kernelSize"]), stride=tuple(s["stride"]),
                               padding=tuple(s["padding"]), ceil_mode=s.get("ceilMode", False),
                               step_mode="m")
    if t == "avgPool2d":
        return layer.AvgPool2d(tuple(s["kernelSize"]), stride=tuple(s["stride"]),
                               padding=tuple(s["padding"]), ceil_mode=s.get("ceilMode", False),
                               count_include_pad=s.get("countIncludePad", True), step_mode="m")
    if t == "flatten":
        return layer.Flatten(step_mode="m")
    if t in NEURON_TYPES:
        return make_neuron(s)
    if t == "sewBlock":
        return make_sew_block(s)
    if t == "relu":
        return nn.ReLU()
    if t == "dualStream":
        return DualStreamRef(s)
    raise ValueError(t)


# ----------------------------------------------------------------------------------------------
# Dual-stream training (docs/dual-stream-training.md), from SpikingJelly neurons and torch layers.
# Attribute names equal ours, so parameter names need no mapping.


class DualBlockRef(nn.Module):
    """S = branch(O); O' = g(S, shortcut(O)) or SN_res(S + shortcut(O)); A' = P(A) + S."""

    def __init__(self, s):
        super().__init__()
        self.connect = s["connect"]
        self.branch = nn.Sequential(*[make_layer(l) for l in s["branch"]])
        self.shortcut = nn.Sequential(*[make_layer(l) for l in s["shortcut"]]) if s.get("shortcut") else None
        self.projection = (nn.Sequential(*[make_layer(l) for l in s["projection"]])
                           if s.get("projection") else None)
        if self.connect == "spikingResnet":
            n = dict(neuron_spec("if", SURROGATES["atan"]))
            n.update(s.get("residualNeuron") or {})
            n["type"] = "if"
            self.residual = make_neuron(n)

    def forward(self, o, a):
        s = self.branch(o)
        x = self.shortcut(o) if self.shortcut is not None else o
        g = self.connect
        if g == "and":
            o2 = s * x
        elif g == "iand":
            o2 = (1.0 - s) * x
        elif g == "or":
            o2 = s + x - s * x
        elif g == "xor":
            o2 = s + x - 2.0 * s * x
        elif g == "spikingResnet":
            o2 = self.residual(s + x)
        else:
            raise ValueError(g)
        p = self.projection(a) if self.projection is not None else a
        return o2, p + s


class DualStreamRef(nn.Module):
    """O_0 = A_0 = x; blocks and poolings of both streams; y_s, y_a = FC(GAP(O_L)), FC(GAP(A_L))
    per step with ONE shared FC; output [T, N, 2K] = [y_s | y_a]."""

    def __init__(self, s):
        super().__init__()
        assert s.get("aap", True)
        self.stages = nn.ModuleList(
            [DualBlockRef(st) if st["type"] == "block" else make_layer(st) for st in s["stages"]])
        h = s["head"]
        self.head = layer.Linear(h["inFeatures"], h["outFeatures"], bias=h.get("bias", True),
                                 step_mode="m")

    def forward(self, x):
        o, a = x, x
        for st in self.stages:
            if isinstance(st, DualBlockRef):
                o, a = st(o, a)
            else:
                o, a = st(o), st(a)
        return torch.cat([self.head(o.mean((3, 4))), self.head(a.mean((3, 4)))], dim=-1)


# Our names inside a SEW block -> attribute names of SpikingJelly's sew_resnet.BasicBlock.
SEW_BRANCH_NAMES = ["conv1", "bn1", "sn1", "conv2", "bn2", "sn2"]
SEW_SHORTCUT_NAMES = ["downsample.0", "downsample.1", "downsample_sn"]
CONNECT = {"add": "ADD", "and": "AND", "iand": "IAND"}


def make_sew_block(s):
    """SpikingJelly's own SEW BasicBlock; our spec must have its exact layout."""
    br = s["branch"]
    assert [l["type"] for l in br[:2]] == ["conv2d", "batchNorm2d"]
    assert [l["type"] for l in br[3:5]] == ["conv2d", "batchNorm2d"]
    assert br[2] == br[5] and br[2]["type"] in NEURON_TYPES
    c1, c2 = br[0], br[3]
    assert c1["kernelSize"] == [3, 3] and c1["padding"] == [1, 1] and not c1["bias"]
    assert c2["kernelSize"] == [3, 3] and c2["padding"] == [1, 1] and not c2["bias"]
    assert c2["stride"] == [1, 1] and c2["inChannels"] == c2["outChannels"] == c1["outChannels"]
    stride = c1["stride"][0]
    downsample = None
    if s.get("shortcut") is not None:
        sc = s["shortcut"]
        assert [l["type"] for l in sc[:2]] == ["conv2d", "batchNorm2d"] and sc[2] == br[2]
        downsample = nn.Sequential(make_layer(sc[0]), make_layer(sc[1]))
    sn = br[2]
    kw = neuron_kwargs(sn)
    if sn["type"] == "if":
        cls = neuron.IFNode
    elif sn["type"] == "lif":
        cls = neuron.LIFNode
        kw.update(tau=float(sn["tau"]), decay_input=bool(sn["decayInput"]))
    else:
        cls = neuron.ParametricLIFNode
        kw.update(init_tau=float(sn["tau"]), decay_input=bool(sn["decayInput"]))
    block = sew_resnet.BasicBlock(c1["inChannels"], c1["outChannels"], stride=stride,
                                  downsample=downsample, cnf=CONNECT[s["connect"]],
                                  spiking_neuron=cls, **kw)
    functional.set_step_mode(block, "m")
    return block


class Net(nn.Module):
    def __init__(self, spec):
        super().__init__()
        self.spec = spec
        self.layers = nn.Sequential(*[make_layer(l) for l in spec["layers"]])

    def forward(self, x):
        if self.spec["encoding"] == "direct":
            x = x.unsqueeze(0).repeat(self.spec["timeSteps"], *([1] * x.dim()))
        return self.layers(x)


def our_name(torch_name):
    """`layers.3.conv1.weight` -> `layers.3.branch.0.weight`, etc."""
    assert torch_name.startswith("layers.")
    parts = torch_name.split(".")
    i, rest = parts[1], ".".join(parts[2:])
    for j, n in enumerate(SEW_BRANCH_NAMES):
        if rest.startswith(n + "."):
            return f"layers.{i}.branch.{j}.{rest[len(n) + 1:]}"
    for j, n in enumerate(SEW_SHORTCUT_NAMES):
        if rest.startswith(n + "."):
            return f"layers.{i}.shortcut.{j}.{rest[len(n) + 1:]}"
    return torch_name


def named_params(net):
    return {our_name(n): p for n, p in net.named_parameters()}


def named_buffers(net):
    return {our_name(n): b for n, b in net.named_buffers()
            if n.endswith("running_mean") or n.endswith("running_var")}


def tensor_json(t, shape=None):
    t = t.detach().to(torch.float32).contiguous()
    shape = list(t.shape) if shape is None else shape
    # 9 significant digits round-trip float32 exactly and keep the files small.
    return {"shape": shape, "data": [float("%.9g" % v) for v in t.reshape(-1).tolist()]}


def param_json(name, p):
    # SpikingJelly's PLIF `w` is a 0-d tensor; ours has shape [1].
    if name.endswith(".w") and p.dim() == 0:
        return tensor_json(p, [1])
    return tensor_json(p)


def randomize_bn(net, gen, eval_stats=False):
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            with torch.no_grad():
                if m.affine:
                    m.weight.copy_(0.8 + 0.8 * torch.rand(c, generator=gen))
                    m.bias.copy_(0.6 * torch.rand(c, generator=gen))
                if eval_stats:
                    m.running_mean.copy_(0.5 * torch.randn(c, generator=gen))
                    m.running_var.copy_(0.3 + 1.2 * torch.rand(c, generator=gen))


# ----------------------------------------------------------------------------------------------
# Spike-flip guard and firing rates


def check_margins(net, x, training):
    """Runs a deep copy of `net` with every neuron forced onto SpikingJelly's step-by-step
    (training-mode) path, so that the surrogate's input H_t - V_th can be recorded with a hook
    (in eval mode IF/LIF use fused jit functions that bypass it; values are identical). BN keeps
    the requested mode. Returns (min |H_t - V_th|, firing rate per neuron layer, output)."""
    functional.reset_net(net)  # drop membrane tensors that hold an autograd graph
    probe = copy.deepcopy(net)
    probe.train(training)
    mins, recomputed, rates = [], [], []
    for m in probe.modules():
        if isinstance(m, neuron.BaseNode):
            m.train(True)
            m.surrogate_function.register_forward_pre_hook(
                lambda mod, inp: mins.append(inp[0].detach().abs().min().item()))
            # SpikingJelly 2 runs IF/LIF/PLIF through fused functions that call no surrogate
            # module: there H_t is recomputed from the neuron's input by its equations.
            m.register_forward_pre_hook(
                lambda mod, inp: recomputed.append(neuron_margin(mod, inp[0].detach())))
            m.register_forward_hook(lambda mod, inp, out: rates.append(out.detach().mean().item()))
    functional.reset_net(probe)
    with torch.no_grad():
        out = probe(x)
    return min(mins or recomputed), rates, out


def neuron_margin(m, x_seq):
    """min |H_t - V_th| of the neuron module `m` on x_seq [T, ...], by its equations."""
    v_th, v_reset = float(m.v_threshold), m.v_reset
    rest = 0.0 if v_reset is None else float(v_reset)
    if isinstance(m, neuron.ParametricLIFNode):
        inv_tau = m.w.detach().sigmoid().item()
    elif isinstance(m, neuron.LIFNode):
        inv_tau = 1.0 / float(m.tau)
    else:
        inv_tau = None
    v = torch.full_like(x_seq[0], rest)
    margin = float("inf")
    for x in x_seq:
        if inv_tau is None:
            h = v + x
        elif m.decay_input:
            h = v + (x - (v - rest)) * inv_tau
        else:
            h = v - (v - rest) * inv_tau + x
        margin = min(margin, (h - v_th).abs().min().item())
        spike = (h >= v_th).to(h.dtype)
        v = h - spike * v_th if v_reset is None else torch.where(spike > 0, torch.full_like(h, rest), h)
    return margin


def acceptable(net, x, training, expected_out=None):
    margin, rates, out = check_margins(net, x, training)
    if expected_out is not None:
        assert torch.allclose(out, expected_out, atol=1e-5), "probe disagrees with the real forward"
    ok = margin >= MARGIN and all(MIN_RATE <= r <= MAX_RATE for r in rates)
    return ok, margin, rates


# ----------------------------------------------------------------------------------------------
# Case runners


def run_forward_backward_case(name, spec, make_input, training=True, eval_stats=False):
    for attempt in range(MAX_ATTEMPTS):
        seed = sum(ord(c) * (i + 1) for i, c in enumerate(name)) * 1000 + attempt
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = Net(spec)
        randomize_bn(net, gen, eval_stats=eval_stats)
        x = make_input(gen)
        ok, margin, rates = acceptable(net, x, training)
        if not ok:
            continue

        params0 = {n: param_json(n, p) for n, p in named_params(net).items()}
        buffers0 = {n: tensor_json(b) for n, b in named_buffers(net).items()}

        net.train(training)
        functional.reset_net(net)
        if training:
            xg = x.clone().requires_grad_(True)
            out = net(xg)
            grad_out = torch.randn(out.shape, generator=gen)
            net.zero_grad()
            (out * grad_out).sum().backward()
        else:
            # In eval mode SpikingJelly's IF/LIF run fused jit functions whose spikes carry no
            # surrogate gradient, so an eval case checks the forward pass only.
            with torch.no_grad():
                out = net(x)
        # The probe ran the neurons on the step-by-step path; confirm it saw the same spikes.
        ok2, _, _ = acceptable(net_copy_with_buffers(net, buffers0), x, training, out.detach())
        assert ok2

        fixture = {
            "name": name,
            "generator": GENERATOR,
            "seed": seed,
            "minMargin": margin,
            "firingRates": rates,
            "spec": spec,
            "training": training,
            "input": tensor_json(x),
            "params": params0,
            "buffers": buffers0,
            "output": tensor_json(out),
        }
        if training:
            grads = {}
            for n, p in named_params(net).items():
                g = p.grad if p.grad is not None else torch.zeros_like(p)
                grads[n] = param_json(n, g)
            fixture["gradOutput"] = tensor_json(grad_out)
            fixture["gradInput"] = tensor_json(xg.grad)
            fixture["grads"] = grads
        fixture["buffersAfter"] = {n: tensor_json(b) for n, b in named_buffers(net).items()}
        return fixture
    raise RuntimeError(f"{name}: no acceptable seed in {MAX_ATTEMPTS} attempts")


def net_copy_with_buffers(net, buffers0):
    """A copy of `net` with the BN running statistics restored to their pre-forward values."""
    functional.reset_net(net)
    c = copy.deepcopy(net)
    bufs = named_buffers(c)
    with torch.no_grad():
        for n, t in buffers0.items():
            bufs[n].copy_(torch.tensor(t["data"]).reshape(t["shape"]))
    return c


def run_training_case(name, spec, make_input, n_classes, steps=3, lr=0.1, momentum=0.9):
    for attempt in range(MAX_ATTEMPTS):
        seed = sum(ord(c) * (i + 1) for i, c in enumerate(name)) * 1000 + attempt
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        net = Net(spec)
        randomize_bn(net, gen)
        params0 = {n: param_json(n, p) for n, p in named_params(net).items()}
        buffers0 = {n: tensor_json(b) for n, b in named_buffers(net).items()}
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
        records, margins, all_rates, ok = [], [], [], True
        for _ in range(steps):
            x = make_input(gen)
            labels = torch.randint(0, n_classes, (x.shape[0],), generator=gen)
            good, margin, rates = acceptable(net, x, True)
            margins.append(margin)
            all_rates.append(rates)
            if not good:
                ok = False
                break
            net.train(True)
            functional.reset_net(net)
            opt.zero_grad()
            out = net(x)
            loss = F.cross_entropy(out.mean(0), labels)
            loss.backward()
            opt.step()
            records.append({
                "input": tensor_json(x),
                "labels": labels.tolist(),
                "loss": float("%.9g" % loss.item()),
                "paramsAfter": {n: param_json(n, p) for n, p in named_params(net).items()},
                "buffersAfter": {n: tensor_json(b) for n, b in named_buffers(net).items()},
            })
        if not ok:
            continue
        return {
            "name": name,
            "generator": GENERATOR,
            "seed": seed,
            "minMargin": min(margins),
            "firingRates": all_rates,
            "spec": spec,
            "optimizer": {"type": "sgd", "lr": lr, "momentum": momentum},
            "loss": {"type": "crossEntropy"},
            "params": params0,
            "buffers": buffers0,
            "steps": records,
        }
    raise RuntimeError(f"{name}: no acceptable seed in {MAX_ATTEMPTS} attempts")


# ----------------------------------------------------------------------------------------------
# The cases


def neuron_input(T=6, N=4, F_=37):
    def make(gen):
        # Each feature gets its own mean drive, from sub-threshold to strongly supra-threshold,
        # so that the rates differ across features; plus per-step noise.
        drive = torch.linspace(-0.3, 2.2, F_)
        noise = 0.6 * torch.randn(T, N, F_, generator=gen)
        return (drive + noise).to(torch.float32)
    return make


def neuron_cases():
    cases = []
    variants = [
        ("if", {}),
        ("lif", {"decay_input": True}),
        ("lif_nodecay", {"decay_input": False}),
        ("plif", {"decay_input": True, "tau": 3.0}),
    ]
    for vname, extra in variants:
        kind = vname.split("_")[0]
        for sname, sspec in SURROGATES.items():
            for reset_name, v_reset in (("hard", 0.0), ("soft", None)):
                spec_n = neuron_spec(kind, sspec, v_reset=v_reset, **extra)
                name = f"neuron_{vname}_{sname}_{reset_name}"
                cases.append((name, spec_n))
    # detach_reset = false, a few combinations.
    cases += [
        ("neuron_if_sigmoid_hard_nodetach",
         neuron_spec("if", SURROGATES["sigmoid"], 0.0, detach_reset=False)),
        ("neuron_lif_atan_soft_nodetach",
         neuron_spec("lif", SURROGATES["atan"], None, detach_reset=False)),
        ("neuron_lif_nodecay_superspike_hard_nodetach",
         neuron_spec("lif", SURROGATES["superspike"], 0.0, detach_reset=False,
                     decay_input=False)),
        ("neuron_plif_pq_hard_nodetach",
         neuron_spec("plif", SURROGATES["pq"], 0.0, detach_reset=False, tau=3.0)),
        ("neuron_plif_nodecay_sigmoid_soft_nodetach",
         neuron_spec("plif", SURROGATES["sigmoid"], None, detach_reset=False, tau=2.0,
                     decay_input=False)),
    ]
    # Non-default threshold / reset value and tau.
    cases += [
        ("neuron_lif_atan_vreset_neg_vth_half",
         neuron_spec("lif", SURROGATES["atan"], -0.2, tau=2.5, v_threshold=0.5)),
        ("neuron_plif_nodecay_atan_hard",
         neuron_spec("plif", SURROGATES["atan"], 0.0, tau=2.0, decay_input=False)),
    ]
    out = []
    for name, n in cases:
        spec = {"timeSteps": 6, "inputShape": [37], "encoding": "sequence", "layers": [n]}
        out.append(run_forward_backward_case(name, spec, neuron_input()))
    return out


def direct_image(N, C, H, W, scale=1.0):
    def make(gen):
        return (scale * torch.rand(N, C, H, W, generator=gen)).to(torch.float32)
    return make


def event_frames(T, N, C, H, W, p=0.3):
    def make(gen):
        return (torch.rand(T, N, C, H, W, generator=gen) < p).to(torch.float32)
    return make


def stack_cases():
    lif = neuron_spec("lif", SURROGATES["atan"])
    layers = [
        conv(1, 4, 3, padding=1, bias=False), bn(4), lif,
        conv(4, 6, 3, stride=2, padding=1, bias=True), bn(6), lif,
        {"type": "flatten"}, linear(6 * 4 * 4, 5),
    ]
    spec = {"timeSteps": 4, "inputShape": [1, 8, 8], "encoding": "direct", "layers": layers}
    out = [
        run_forward_backward_case("stack_conv_bn_lif_train", spec, direct_image(2, 1, 8, 8, 2.0)),
        run_forward_backward_case("stack_conv_bn_lif_eval", spec, direct_image(2, 1, 8, 8, 2.0),
                                  training=False, eval_stats=True),
    ]
    # Event-frame input, PLIF with soft reset and the sigmoid surrogate.
    plif = neuron_spec("plif", SURROGATES["sigmoid"], None, tau=2.0)
    layers = [
        conv(2, 4, 3, padding=1, bias=True), bn(4), plif,
        conv(4, 4, 3, stride=2, padding=1, bias=False), bn(4), plif,
        {"type": "flatten"}, linear(4 * 4 * 4, 3),
    ]
    spec = {"timeSteps": 5, "inputShape": [2, 8, 8], "encoding": "sequence", "layers": layers}
    out.append(run_forward_backward_case("stack_events_conv_bn_plif_soft_train", spec,
                                         event_frames(5, 2, 2, 8, 8)))
    return out


def sew_cases():
    out = []
    configs = [
        ("sew_iand_if", "iand", neuron_spec("if", SURROGATES["atan"]), False),
        ("sew_add_lif", "add", neuron_spec("lif", SURROGATES["sigmoid"]), False),
        ("sew_and_if", "and", neuron_spec("if", SURROGATES["pq"]), False),
        ("sew_iand_plif_downsample", "iand", neuron_spec("plif", SURROGATES["atan"]), True),
    ]
    for name, connect, sn, down in configs:
        cin, cout, stride = 4, (8 if down else 4), (2 if down else 1)
        block = {
            "type": "sewBlock",
            "branch": [conv(cin, cout, 3, stride=stride, padding=1, bias=False), bn(cout), sn,
                       conv(cout, cout, 3, padding=1, bias=False), bn(cout), sn],
            "connect": connect,
        }
        if down:
            block["shortcut"] = [conv(cin, cout, 1, stride=2, bias=False), bn(cout), sn]
        layers = [conv(1, cin, 3, padding=1, bias=False), bn(cin), sn, block]
        spec = {"timeSteps": 4, "inputShape": [1, 8, 8], "encoding": "direct", "layers": layers}
        out.append(run_forward_backward_case(name, spec, direct_image(2, 1, 8, 8, 2.0)))
    return out


def dual_stream_cases():
    out = []
    # Only g-forms: in the spikingResnet form with an identity shortcut the residual neuron's
    # charge S + O is an integer, exactly at V_th = 1, which the margin guard rejects (the
    # comparison is exact in both engines, but the guard cannot tell).
    for name, connect in (("dst_iand_if_downsample", "iand"), ("dst_xor_if_downsample", "xor")):
        sn = neuron_spec("if", SURROGATES["atan"])

        def branch(cin, cout, stride):
            return [conv(cin, cout, 3, stride=stride, padding=1, bias=False), bn(cout), sn,
                    conv(cout, cout, 3, padding=1, bias=False), bn(cout), sn]

        shortcut = [conv(4, 8, 1, stride=2, bias=False), bn(8)]
        if connect != "spikingResnet":
            shortcut.append(sn)
        trunk = {
            "type": "dualStream",
            "head": {"inFeatures": 8, "outFeatures": 3, "bias": True},
            "aap": True,
            "stages": [
                {"type": "block", "connect": connect, "branch": branch(4, 4, 1)},
                {"type": "maxPool2d", "kernelSize": [2, 2], "stride": [2, 2], "padding": [0, 0]},
                {"type": "block", "connect": connect, "branch": branch(4, 8, 2), "shortcut": shortcut,
                 "projection": [
                     {**conv(4, 4, 3, stride=2, padding=1, bias=False), "groups": 4},
                     conv(4, 8, 1, bias=False), bn(8), {"type": "relu"}]},
            ],
        }
        layers = [conv(1, 4, 3, padding=1, bias=False), bn(4), sn, trunk]
        spec = {"timeSteps": 4, "inputShape": [1, 8, 8], "encoding": "direct", "layers": layers}
        out.append(run_forward_backward_case(name, spec, direct_image(2, 1, 8, 8, 2.5)))
    return out


def training_cases():
    lif = neuron_spec("lif", SURROGATES["atan"])
    layers = [
        conv(1, 4, 3, padding=1, bias=False), bn(4), lif,
        {"type": "maxPool2d", "kernelSize": [2, 2], "stride": [2, 2], "padding": [0, 0]},
        {"type": "flatten"}, linear(4 * 4 * 4, 3),
    ]
    spec = {"timeSteps": 4, "inputShape": [1, 8, 8], "encoding": "direct", "layers": layers}
    return [run_training_case("train_sgd_3steps", spec, direct_image(4, 1, 8, 8, 2.0), 3)]


# Surrogates SpikingJelly has beyond those above (fixtures in tests/fixtures/spikingjelly-2,
# generated with SpikingJelly 2: ONLY=surrogate_v2, see make-fixtures-2.sh).
SURROGATES_V2 = {
    "erf": {"type": "erf", "alpha": 2.0},
    "softsign": {"type": "softSign", "alpha": 3.0},
    "pexp": {"type": "piecewiseExp", "alpha": 1.5},
    "pleaky": {"type": "piecewiseLeakyRelu", "w": 0.8, "c": 0.05},
}


def surrogate_v2_cases():
    out = []
    for sname, sspec in SURROGATES_V2.items():
        for kind, extra in (("if", {}), ("lif", {"decay_input": True}), ("plif", {"tau": 3.0})):
            for reset_name, v_reset in (("hard", 0.0), ("soft", None)):
                n = neuron_spec(kind, sspec, v_reset=v_reset, **extra)
                spec = {"timeSteps": 6, "inputShape": [37], "encoding": "sequence", "layers": [n]}
                out.append(run_forward_backward_case(f"neuron_{kind}_{sname}_{reset_name}", spec,
                                                     neuron_input()))
    n = neuron_spec("lif", SURROGATES_V2["erf"], 0.0, detach_reset=False)
    spec = {"timeSteps": 6, "inputShape": [37], "encoding": "sequence", "layers": [n]}
    out.append(run_forward_backward_case("neuron_lif_erf_hard_nodetach", spec, neuron_input()))
    return out


def pool(kind, k, stride=None, padding=0, ceil_mode=False, count_include_pad=True):
    s = {"type": kind, "kernelSize": [k, k], "stride": [stride or k] * 2, "padding": [padding] * 2}
    if ceil_mode:
        s["ceilMode"] = True
    if not count_include_pad:
        s["countIncludePad"] = False
    return s


def options_v2_cases():
    """The options imported models commonly use: conv bias, BN without affine parameters,
    ceil-mode max and average pooling, average pooling without the padding in its divisor."""
    lif = neuron_spec("lif", SURROGATES_V2["erf"])
    plif = neuron_spec("plif", SURROGATES_V2["softsign"], None, tau=2.0)
    # conv(bias)-BN(affine off)-LIF, ceil max pool 7 -> 4, conv(bias)-BN-PLIF, ceil average pool
    # 4 -> 3 (window 3, stride 2, padding 1, padding not counted), FC.
    layers = [
        conv(1, 4, 3, padding=1, bias=True), {**bn(4), "affine": False}, lif,
        pool("maxPool2d", 2, ceil_mode=True),
        conv(4, 6, 3, padding=1, bias=True), bn(6), plif,
        pool("avgPool2d", 3, stride=2, padding=1, ceil_mode=True, count_include_pad=False),
        {"type": "flatten"}, linear(6 * 3 * 3, 5),
    ]
    spec = {"timeSteps": 4, "inputShape": [1, 7, 7], "encoding": "direct", "layers": layers}
    out = [
        run_forward_backward_case("options_conv_bias_bn_affine_off_ceil_train", spec,
                                  direct_image(2, 1, 7, 7, 2.0)),
        run_forward_backward_case("options_conv_bias_bn_affine_off_ceil_eval", spec,
                                  direct_image(2, 1, 7, 7, 2.0), training=False, eval_stats=True),
    ]
    # conv(bias)-neuron without BN, ceil max pool 8 -> 5 (window 3, stride 2, padding 1), ceil
    # average pool 5 -> 3 whose last window holds one row and column of the input.
    layers = [
        conv(1, 4, 3, padding=1, bias=True), neuron_spec("if", SURROGATES_V2["pexp"]),
        pool("maxPool2d", 3, stride=2, padding=1, ceil_mode=True),
        conv(4, 4, 3, padding=1, bias=True), neuron_spec("lif", SURROGATES_V2["pleaky"], None),
        pool("avgPool2d", 2, ceil_mode=True),
        {"type": "flatten"}, linear(4 * 3 * 3, 3),
    ]
    spec = {"timeSteps": 4, "inputShape": [1, 8, 8], "encoding": "direct", "layers": layers}
    out.append(run_forward_backward_case("options_conv_bias_neuron_ceil_train", spec,
                                         direct_image(2, 1, 8, 8, 2.0)))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    only = os.environ.get("ONLY")
    if only:
        # Regenerates the named cases alone (e.g. ONLY=dual_stream), leaving the others as they are.
        fixtures = [f for group in only.split(",") for f in globals()[group + "_cases"]()]
    else:
        fixtures = neuron_cases() + stack_cases() + sew_cases() + dual_stream_cases() + training_cases()
    for f in fixtures:
        write_fixture(args.out, f)
    print(f"{len(fixtures)} fixtures written to {args.out} "
          f"(spikingjelly {GENERATOR['spikingjelly']}, torch {GENERATOR['torch']})")


if __name__ == "__main__":
    main()
