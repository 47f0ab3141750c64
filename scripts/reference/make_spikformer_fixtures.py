"""Writes SpikingJelly 2.x Spikformer fixtures for crates/core/tests/spikingjelly.rs
(folder crates/core/tests/fixtures/spikingjelly-2/, same JSON layout as the 0.0.0.0.14 ones).

Run: "$(scripts/python/setup-venv.sh)" scripts/reference/make_spikformer_fixtures.py
(setup-venv.sh prints the Python of the repo's venv, which has torch and spikingjelly 2.0.0;
`--only iand` regenerates the cases whose name contains "iand"). The Rust test needs no Python.

Each case is SpikingJelly's own `activation_based.model.spikformer.Spikformer` (its SPS stem,
SSA, MLP, blocks, head and init), small, on the CPU in float32, and the same network written
as OUR model spec (crates/core/src/spec.rs): the SPS stages conv-BN(-maxpool)-LIF, the relative
position conv-BN-LIF joined to its input by a SEW block, `tokens`, per block a SEW block around
SSA (linear 3C - BN1d - LIF - spikingAttention - LIF(V_th 0.5) - linear - BN1d - LIF) and one
around the MLP, then `tokenMean` and the linear head. SpikingJelly's Conv1d(k=1) weights
[out, in, 1] are our linear weights [out, in]. The `iand` cases replace SpikingJelly's ADD
residuals (the relative position join and both block joins) by IAND, g(S, O) = (1 - S) O, by
patching the modules' forward methods.

Spike-flip guard: a case is rejected and regenerated with the next seed when any neuron's
pre-spike potential H_t lies within MARGIN of its threshold, except the attention neuron, whose
input is an integer count times 1/8 (exact in float32 in both engines, so ties at the
threshold resolve the same way). Argmax guard: likewise when a max-pooling window's two largest
values differ by less than MARGIN without being equal. Equal spike patches summed in different
orders (our Winograd tiles, for one) can differ in the last bits, which sends the gradient to
another position: the 32x32 cases (`strict_ties`) also reject exact ties, unless both values
are the image of an all-zero conv output; the 3-step cases, for which no seed passes that,
accept exact ties and are checked on parameters and statistics after the steps.
"""

import argparse
import importlib.metadata
import os

import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, neuron
from spikingjelly.activation_based.layer.attention import SpikingSelfAttention
from spikingjelly.activation_based.model import spikformer as sf

from fixture_files import write_fixture

MARGIN = 2e-5
MAX_ATTEMPTS = 3000
MAX_RATE = 0.95

torch.set_num_threads(1)
torch.set_default_dtype(torch.float32)

GENERATOR = {
    "spikingjelly": importlib.metadata.version("spikingjelly"),
    "torch": torch.__version__,
}
SIGMOID = {"type": "sigmoid", "alpha": 4.0}


def lif(v_threshold=1.0):
    return {"type": "lif", "tau": 2.0, "decayInput": True, "vThreshold": v_threshold,
            "vReset": 0.0, "detachReset": True, "surrogate": SIGMOID}


def conv_bn_lif(cin, cout, pool):
    layers = [{"type": "conv2d", "inChannels": cin, "outChannels": cout, "kernelSize": [3, 3],
               "padding": [1, 1], "bias": False},
              {"type": "batchNorm2d", "numFeatures": cout}]
    if pool:
        layers.append({"type": "maxPool2d", "kernelSize": [3, 3], "stride": [2, 2],
                       "padding": [1, 1]})
    layers.append(lif())
    return layers


def linear(i, o):
    return {"type": "linear", "inFeatures": i, "outFeatures": o, "bias": False}


def bn1d(c):
    return {"type": "batchNorm1d", "numFeatures": c}


def our_spec(cfg, connect):
    """The spec of `cfg`'s Spikformer, and SpikingJelly's parameter name -> ours."""
    d, heads, hidden = cfg["dim"], cfg["heads"], int(cfg["dim"] * cfg["mlpRatio"])
    layers, names = [], {}
    in_c = cfg["inChannels"]
    pool_from = 2 if cfg["patch"] == 4 else 0
    for i, out_c in enumerate([d // 8, d // 4, d // 2, d]):
        at = len(layers)
        layers += conv_bn_lif(in_c, out_c, i >= pool_from)
        names[f"patch_embed.stages.{i}.conv_bn.block.0."] = f"layers.{at}."
        names[f"patch_embed.stages.{i}.conv_bn.block.1."] = f"layers.{at + 1}."
        in_c = out_c
    at = len(layers)
    layers.append({"type": "sewBlock", "connect": connect, "branch": conv_bn_lif(d, d, False)})
    names["patch_embed.positional_encoding.conv_bn.block.0."] = f"layers.{at}.branch.0."
    names["patch_embed.positional_encoding.conv_bn.block.1."] = f"layers.{at}.branch.1."
    layers.append({"type": "tokens"})
    for b in range(cfg["depth"]):
        at = len(layers)
        ssa = [linear(d, 3 * d), bn1d(3 * d), lif(),
               {"type": "spikingAttention", "dim": d, "heads": heads, "scale": 0.125},
               lif(0.5), linear(d, d), bn1d(d), lif()]
        mlp = [linear(d, hidden), bn1d(hidden), lif(), linear(hidden, d), bn1d(d), lif()]
        layers.append({"type": "sewBlock", "connect": connect, "branch": ssa})
        layers.append({"type": "sewBlock", "connect": connect, "branch": mlp})
        p = f"blocks.{b}."
        names[p + "attn.qkv_conv_bn.0."] = f"layers.{at}.branch.0."
        names[p + "attn.qkv_conv_bn.1."] = f"layers.{at}.branch.1."
        names[p + "attn.proj_conv_bn.0."] = f"layers.{at}.branch.5."
        names[p + "attn.proj_conv_bn.1."] = f"layers.{at}.branch.6."
        names[p + "mlp.fc1.0."] = f"layers.{at + 1}.branch.0."
        names[p + "mlp.fc1.1."] = f"layers.{at + 1}.branch.1."
        names[p + "mlp.fc2.0."] = f"layers.{at + 1}.branch.3."
        names[p + "mlp.fc2.1."] = f"layers.{at + 1}.branch.4."
    layers.append({"type": "tokenMean"})
    names["head."] = f"layers.{len(layers)}."
    layers.append({"type": "linear", "inFeatures": d, "outFeatures": cfg["classes"]})
    spec = {"timeSteps": cfg["T"], "inputShape": [cfg["inChannels"], cfg["size"], cfg["size"]],
            "encoding": "direct", "layers": layers}
    return spec, names


def iand(s, o):
    return (1.0 - s) * o


def use_iand(net):
    """SpikingJelly's Spikformer with every ADD residual replaced by IAND (branch S, shortcut O)."""
    def stem_forward(self, x_seq):
        x_seq = self.stages(x_seq)
        return iand(self.positional_encoding(x_seq), x_seq)

    def block_forward(self, x_seq):
        t, n, c, h, w = x_seq.shape
        x = x_seq.flatten(3)
        x = iand(self.attn(x), x)
        x = iand(self.mlp(x), x)
        return x.reshape(t, n, c, h, w).contiguous()

    net.patch_embed.forward = stem_forward.__get__(net.patch_embed)
    for block in net.blocks:
        block.forward = block_forward.__get__(block)


def build(cfg, connect):
    net = sf.Spikformer(T=cfg["T"], in_channels=cfg["inChannels"], img_size_h=cfg["size"],
                        img_size_w=cfg["size"], patch_size=cfg["patch"],
                        num_classes=cfg["classes"], embed_dims=cfg["dim"],
                        num_heads=cfg["heads"], mlp_ratio=cfg["mlpRatio"], depths=cfg["depth"])
    if connect == "iand":
        use_iand(net)
    return net


def randomize(net, gen):
    """Weights large enough to make every layer fire (the paper's std 0.02 init leaves BN to
    do it, which it does; the BN affine parameters are spread so that channels differ)."""
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d)):
                c = m.num_features
                m.weight.copy_(0.8 + 0.8 * torch.rand(c, generator=gen))
                m.bias.copy_(0.6 * torch.rand(c, generator=gen))
        net.head.weight.normal_(0.0, 0.3, generator=gen)
        net.head.bias.normal_(0.0, 0.1, generator=gen)


def ours(names, torch_name):
    for prefix, mine in names.items():
        if torch_name.startswith(prefix):
            return mine + torch_name[len(prefix):]
    raise KeyError(torch_name)


def tensor_json(t, shape=None):
    t = t.detach().to(torch.float32).contiguous()
    shape = list(t.shape) if shape is None else shape
    return {"shape": shape, "data": [float("%.9g" % v) for v in t.reshape(-1).tolist()]}


def param_json(p):
    # Conv1d(k=1) weights [out, in, 1] are linear weights [out, in].
    if p.dim() == 3 and p.shape[2] == 1:
        return tensor_json(p[:, :, 0])
    return tensor_json(p)


def params_of(net, names, grad=False):
    out = {}
    for n, p in net.named_parameters():
        v = (p.grad if p.grad is not None else torch.zeros_like(p)) if grad else p
        out[ours(names, n)] = param_json(v)
    return out


def buffers_of(net, names):
    return {ours(names, n): tensor_json(b) for n, b in net.named_buffers()
            if n.endswith("running_mean") or n.endswith("running_var")}


def pool_gaps(seq_container, store, strict_ties):
    """Hooks a SpikformerConv2dBN block [conv, BN, max pool] to record, per run, the smallest
    gap between the two largest values of a pooling window; an exact tie counts as no gap at all
    unless `strict_ties`, where it does unless both values come from all-zero conv outputs."""
    conv, _, pool = list(seq_container)
    seen = {}

    def conv_hook(mod, inp, out):
        seen["zero"] = out.detach() == 0

    def pool_hook(mod, inp, out):
        x = inp[0].detach()
        k, st, pad = pool.kernel_size, pool.stride, pool.padding
        b, c = x.shape[:2]
        xv = F.unfold(F.pad(x, [pad] * 4, value=float("-inf")), k, stride=st)
        zv = F.unfold(F.pad(seen["zero"].float(), [pad] * 4, value=0.0), k, stride=st)
        xv, zv = xv.reshape(b, c, k * k, -1), zv.reshape(b, c, k * k, -1)
        top, at = xv.topk(2, dim=2)
        both_zero = zv.gather(2, at).sum(2) == 2
        gap = top[:, :, 0] - top[:, :, 1]
        safe_tie = both_zero if strict_ties else torch.ones_like(both_zero)
        gap = torch.where(safe_tie & (gap == 0), torch.full_like(gap, float("inf")), gap)
        store.append(gap.min().item())

    return [conv.register_forward_hook(conv_hook), pool.register_forward_hook(pool_hook)]


def margins(net, x, strict_ties):
    """Runs `net` once (no grad, BN statistics restored after) recording, for every LIF but the
    attention one, min |H_t - V_th| computed from its input sequence, and every firing rate."""
    state = {k: v.clone() for k, v in net.state_dict().items()}
    mins, rates = [], []
    attn = {id(m.attn_lif) for m in net.modules() if isinstance(m, SpikingSelfAttention)}

    def hook(mod, inp, out):
        rates.append(out.detach().mean().item())
        if id(mod) in attn:
            return
        x_seq = inp[0].detach().double()
        v = torch.zeros_like(x_seq[0])
        worst = float("inf")
        for t in range(x_seq.shape[0]):
            h = v + (x_seq[t] - v) / mod.tau
            worst = min(worst, (h - mod.v_threshold).abs().min().item())
            v = torch.where(h >= mod.v_threshold, torch.zeros_like(h), h)
        mins.append(worst)

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, neuron.BaseNode)]
    for m in net.modules():
        if isinstance(m, sf.SpikformerConv2dBN) and len(m.block) == 3:
            handles += pool_gaps(m.block, mins, strict_ties)
    functional.reset_net(net)
    with torch.no_grad():
        net(x)
    for h in handles:
        h.remove()
    net.load_state_dict(state)
    functional.reset_net(net)
    return min(mins), rates


def acceptable(net, x, strict_ties):
    margin, rates = margins(net, x, strict_ties)
    return margin >= MARGIN and all(0.0 < r <= MAX_RATE for r in rates), margin, rates


def seed_of(name, attempt):
    return sum(ord(c) * (i + 1) for i, c in enumerate(name)) * 1000 + attempt


def seeded_net(name, attempt, cfg, connect):
    """Attempt `attempt` of case `name`: its seed, the generator seeded with it (which drew the
    weights) and the network with those weights."""
    seed = seed_of(name, attempt)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = build(cfg, connect)
    randomize(net, gen)
    return seed, gen, net


def forward_backward_case(name, cfg, connect):
    spec, names = our_spec(cfg, connect)
    for attempt in range(MAX_ATTEMPTS):
        seed, gen, net = seeded_net(name, attempt, cfg, connect)
        x = 2.0 * torch.rand(cfg["N"], cfg["inChannels"], cfg["size"], cfg["size"], generator=gen)
        ok, margin, rates = acceptable(net, x, strict_ties=True)
        if not ok:
            continue
        params0, buffers0 = params_of(net, names), buffers_of(net, names)
        net.train(True)
        functional.reset_net(net)
        xg = x.clone().requires_grad_(True)
        out = net(xg)
        grad_out = torch.randn(out.shape, generator=gen)
        net.zero_grad()
        (out * grad_out).sum().backward()
        return {
            "name": name, "generator": GENERATOR, "seed": seed, "minMargin": margin,
            "firingRates": rates, "spec": spec, "training": True,
            "input": tensor_json(x), "params": params0, "buffers": buffers0,
            "output": tensor_json(out), "gradOutput": tensor_json(grad_out),
            "gradInput": tensor_json(xg.grad), "grads": params_of(net, names, grad=True),
            "buffersAfter": buffers_of(net, names),
        }
    raise RuntimeError(f"{name}: no acceptable seed in {MAX_ATTEMPTS} attempts")


def training_case(name, cfg, connect, steps=3, lr=0.1, momentum=0.9):
    spec, names = our_spec(cfg, connect)
    for attempt in range(MAX_ATTEMPTS):
        seed, gen, net = seeded_net(name, attempt, cfg, connect)
        params0, buffers0 = params_of(net, names), buffers_of(net, names)
        opt = torch.optim.SGD(net.parameters(), lr=lr, momentum=momentum)
        records, worst, all_rates, ok = [], float("inf"), [], True
        for _ in range(steps):
            x = 2.0 * torch.rand(cfg["N"], cfg["inChannels"], cfg["size"], cfg["size"],
                                 generator=gen)
            labels = torch.randint(0, cfg["classes"], (cfg["N"],), generator=gen)
            good, margin, rates = acceptable(net, x, strict_ties=False)
            worst, ok = min(worst, margin), ok and good
            all_rates.append(rates)
            if not ok:
                break
            net.train(True)
            functional.reset_net(net)
            opt.zero_grad()
            loss = F.cross_entropy(net(x).mean(0), labels)
            loss.backward()
            opt.step()
            records.append({
                "input": tensor_json(x), "labels": labels.tolist(),
                "loss": float("%.9g" % loss.item()),
                "paramsAfter": params_of(net, names), "buffersAfter": buffers_of(net, names),
            })
        if not ok:
            continue
        return {
            "name": name, "generator": GENERATOR, "seed": seed, "minMargin": worst,
            "firingRates": all_rates, "spec": spec,
            "optimizer": {"type": "sgd", "lr": lr, "momentum": momentum},
            "loss": {"type": "crossEntropy"}, "params": params0, "buffers": buffers0,
            "steps": records,
        }
    raise RuntimeError(f"{name}: no acceptable seed in {MAX_ATTEMPTS} attempts")


# 32x32 RGB, 8x8 = 64 tokens of 16 channels per head: SSA takes the Q (K^T V) order.
WIDE = {"T": 2, "N": 2, "inChannels": 3, "size": 32, "patch": 4, "dim": 32, "heads": 2,
        "mlpRatio": 2.0, "depth": 1, "classes": 5}
# 16x16, 4x4 = 16 tokens of 32 channels in one head: SSA takes the (Q K^T) V order.
DEEP = {"T": 3, "N": 2, "inChannels": 1, "size": 16, "patch": 4, "dim": 32, "heads": 1,
        "mlpRatio": 4.0, "depth": 2, "classes": 4}


def cases(only):
    """Yields each fixture as it is found (names containing `only`, when given)."""
    for connect in ("add", "iand"):
        for name, make in ((f"spikformer_{connect}_32x32", forward_backward_case),
                           (f"spikformer_{connect}_sgd_3steps", training_case)):
            if not only or only in name:
                yield make(name, WIDE if make is forward_backward_case else DEEP, connect)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "..", "crates",
                                                  "core", "tests", "fixtures", "spikingjelly-2"))
    ap.add_argument("--only", help="regenerate the cases whose name contains this")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for f in cases(args.only):
        write_fixture(args.out, f)
    print(f"written to {args.out} (spikingjelly {GENERATOR['spikingjelly']}, "
          f"torch {GENERATOR['torch']})")


if __name__ == "__main__":
    main()
