"""Writes random-init state_dicts in SpikingJelly's and the AAP code's layouts, with the logits
those networks give, for the import proof in __test__/pytorch.spec.ts.

    python torch_reference_models.py OUT_DIR [CASE ...]

For each case OUT_DIR/<name>.safetensors holds the state_dict (their names, BN's
num_batches_tracked included) and OUT_DIR/<name>.io.safetensors the input "x" [N, C, H, W]
and the eval-mode time-mean logits ("logits" and, for AAP, "logits_acc").

SpikingJelly's zoo networks (sew_resnet, spiking_resnet) are used as they are. The AAP
definitions (Dual-Stream Training's dsnn18..101) are rebuilt here in their module layout:
conv-BN pairs in SeqToANNContainers (conv<k>.module.0/1), the spike shortcut
downsample.0.module.0/1 + IF, the projection `pool` (depthwise 3x3 + 1x1 at stride 2, else
1x1; BN; ReLU), IF neurons with detach_reset, one stem conv-BN applied once and repeated over T,
and fc / fc_acc heads of which only fc is used (on both streams).

"sj-options" is a small SEW ResNet in the zoo's names with the options imported models commonly
use: biased convs, BNs without affine parameters, PLIF neurons with the Erf, SoftSign,
PiecewiseExp and PiecewiseLeakyReLU surrogates, ceil-mode max pooling and a ceil-mode average
pooling that leaves the padding out of its divisor.

"sj-spikformer-add" is SpikingJelly's own Spikformer (16x16 RGB, patch 4, dim 16, 2 heads, MLP
ratio 2, one block, T 2) with PyTorch's default conv/linear initialisation instead of its std
0.02 one and BN statistics from training-mode passes, so that the spikes depend on the input;
"sj-spikformer-iand" is the same network with
every ADD residual (the relative position join and both block joins) replaced by IAND,
g(S, X) = (1 - S) X, by replacing the forward methods.
"""

import os
import sys

import torch
import torch.nn as nn
from safetensors.torch import save_file
from spikingjelly.activation_based import functional, layer, neuron, surrogate
from spikingjelly.activation_based.model import sew_resnet, spikformer, spiking_resnet

# The IAND form of SpikingJelly's Spikformer is the one the Spikformer fixtures are made with.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "reference"))
from make_spikformer_fixtures import use_iand  # noqa: E402

torch.set_num_threads(1)
T, N, SIZE, CLASSES = 2, 2, 16, 4


def if_node():
    return neuron.IFNode(detach_reset=True, surrogate_function=surrogate.ATan(), step_mode="m")


class AapBlock(nn.Module):
    def __init__(self, inplanes, planes, stride, bottleneck, connect):
        super().__init__()
        out = planes * (4 if bottleneck else 1)
        self.connect = connect
        if bottleneck:
            shapes = [(inplanes, planes, 1, 1), (planes, planes, 3, stride), (planes, out, 1, 1)]
        else:
            shapes = [(inplanes, planes, 3, stride), (planes, planes, 3, 1)]
        for k, (i, o, ks, s) in enumerate(shapes, 1):
            setattr(self, f"conv{k}", layer.SeqToANNContainer(
                nn.Conv2d(i, o, ks, stride=s, padding=ks // 2, bias=False), nn.BatchNorm2d(o)))
            setattr(self, f"sn{k}", if_node())
        self.n = len(shapes)
        self.downsample = self.pool = None
        if stride != 1 or inplanes != out:
            self.downsample = nn.Sequential(
                layer.SeqToANNContainer(nn.Conv2d(inplanes, out, 1, stride=stride, bias=False),
                                        nn.BatchNorm2d(out)),
                if_node())
            convs = (nn.Sequential(nn.Conv2d(inplanes, inplanes, 3, stride=stride, padding=1,
                                             groups=inplanes, bias=False),
                                   nn.Conv2d(inplanes, out, 1, bias=False))
                     if stride != 1 else nn.Conv2d(inplanes, out, 1, bias=False))
            self.pool = layer.SeqToANNContainer(convs, nn.BatchNorm2d(out), nn.ReLU())

    def forward(self, streams):
        o, a = streams
        s = o
        for k in range(1, self.n + 1):
            s = getattr(self, f"sn{k}")(getattr(self, f"conv{k}")(s))
        if self.downsample is not None:
            o, a = self.downsample(o), self.pool(a)
        if self.connect == "IAND":
            joined = o * (1.0 - s)
        elif self.connect == "OR":
            joined = s + o - s * o
        else:
            raise ValueError(self.connect)
        return [joined, a + s]


class AapNet(nn.Module):
    def __init__(self, blocks, bottleneck, connect="IAND"):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.sn1 = if_node()
        self.maxpool = layer.SeqToANNContainer(nn.MaxPool2d(3, stride=2, padding=1))
        inplanes = 64
        for i, (planes, n) in enumerate(zip([64, 128, 256, 512], blocks)):
            layers = []
            for b in range(n):
                layers.append(AapBlock(inplanes, planes, 2 if b == 0 and i > 0 else 1, bottleneck,
                                       connect))
                inplanes = planes * (4 if bottleneck else 1)
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.fc = nn.Linear(inplanes, CLASSES)
        self.fc_acc = nn.Linear(inplanes, CLASSES)

    def forward(self, x):
        x = self.bn1(self.conv1(x)).unsqueeze(0).repeat(T, 1, 1, 1, 1)
        x = self.maxpool(self.sn1(x))
        o, a = self.layer4(self.layer3(self.layer2(self.layer1([x, x]))))
        return (self.fc(o.mean((3, 4)).mean(0)), self.fc(a.mean((3, 4)).mean(0)))


def plif(sg):
    return neuron.ParametricLIFNode(init_tau=2.0, v_threshold=0.3, detach_reset=True,
                                    surrogate_function=sg, step_mode="m")


class OptionsBlock(nn.Module):
    """A SEW basic block (ADD) in sew_resnet's names, with biased convs and affine-free BNs."""

    def __init__(self, inplanes, planes, stride, sg):
        super().__init__()
        self.conv1 = layer.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=True)
        self.bn1 = layer.BatchNorm2d(planes, affine=False)
        self.sn1 = plif(sg)
        self.conv2 = layer.Conv2d(planes, planes, 3, padding=1, bias=True)
        self.bn2 = layer.BatchNorm2d(planes)
        self.sn2 = plif(surrogate.PiecewiseLeakyReLU(w=1.0, c=0.01))
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(
                layer.Conv2d(inplanes, planes, 1, stride=stride, bias=True),
                layer.BatchNorm2d(planes, affine=False))
            self.downsample_sn = plif(surrogate.PiecewiseExp(alpha=1.0))

    def forward(self, x):
        out = self.sn2(self.bn2(self.conv2(self.sn1(self.bn1(self.conv1(x))))))
        identity = x if self.downsample is None else self.downsample_sn(self.downsample(x))
        return out + identity


class OptionsNet(nn.Module):
    """[T, N, 3, 13, 13] -> conv1 (bias), bn1 (no affine), sn1, 2x2 ceil max pool (7x7), two SEW
    blocks (8 and 16 channels, the second at stride 2: 4x4), 3x3 stride-2 ceil average pool
    with padding 1 not counted (3x3), flatten, fc."""

    def __init__(self):
        super().__init__()
        self.conv1 = layer.Conv2d(3, 8, 3, padding=1, bias=True)
        self.bn1 = layer.BatchNorm2d(8, affine=False)
        self.sn1 = plif(surrogate.Erf(alpha=2.0))
        self.maxpool = layer.MaxPool2d(2, 2, ceil_mode=True)
        self.layer1 = nn.Sequential(OptionsBlock(8, 8, 1, surrogate.Erf(alpha=2.0)))
        self.layer2 = nn.Sequential(OptionsBlock(8, 16, 2, surrogate.SoftSign(alpha=2.0)))
        self.avgpool = layer.AvgPool2d(3, 2, padding=1, ceil_mode=True, count_include_pad=False)
        self.fc = layer.Linear(16 * 3 * 3, CLASSES)

    def forward(self, x):
        x = self.maxpool(self.sn1(self.bn1(self.conv1(x))))
        x = self.avgpool(self.layer2(self.layer1(x)))
        return self.fc(x.flatten(2))


def randomize(net, gen):
    for m in net.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            with torch.no_grad():
                if m.affine:
                    m.weight.copy_(0.8 + 0.8 * torch.rand(c, generator=gen))
                    m.bias.copy_(0.6 * torch.rand(c, generator=gen))
                m.running_mean.copy_(0.4 * (torch.rand(c, generator=gen) - 0.5))
                m.running_var.copy_(0.5 + torch.rand(c, generator=gen))


def sj_spikformer(connect):
    net = spikformer.Spikformer(T=T, in_channels=3, img_size_h=SIZE, img_size_w=SIZE, patch_size=4,
                                num_classes=CLASSES, embed_dims=16, num_heads=2, mlp_ratio=2, depths=1)
    for m in net.modules():
        if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)):
            m.reset_parameters()
    if connect == "iand":
        use_iand(net)
    return net


def calibrate(net, gen):
    """BN statistics from training-mode passes over random images, and BN scales and shifts
    that drive Spikformer's LIF neurons (tau 2, threshold 1: a first step fires from 2) to fire:
    with randomize()'s the spikes die out within the stem and the logits ignore the input."""
    net.train()
    with torch.no_grad():
        for _ in range(20):
            functional.reset_net(net)
            net(2.5 * torch.rand(8, 3, SIZE, SIZE, generator=gen))
        for m in net.modules():
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                c = m.num_features
                m.weight.copy_(1.5 + 1.5 * torch.rand(c, generator=gen))
                m.bias.copy_(0.5 + torch.rand(c, generator=gen))


def sj_kwargs():
    return dict(spiking_neuron=neuron.IFNode, surrogate_function=surrogate.ATan(), detach_reset=True,
                num_classes=CLASSES)


CASES = {
    "sj-sewResnet18": lambda: sew_resnet.sew_resnet18(cnf="ADD", **sj_kwargs()),
    "sj-sewResnet50": lambda: sew_resnet.sew_resnet50(cnf="ADD", **sj_kwargs()),
    "sj-spikingResnet18": lambda: spiking_resnet.spiking_resnet18(**sj_kwargs()),
    "aap-dsnn18": lambda: AapNet([2, 2, 2, 2], False),
    "aap-dsnn50": lambda: AapNet([3, 4, 6, 3], True),
    "sj-options": OptionsNet,
    "sj-spikformer-add": lambda: sj_spikformer("add"),
    "sj-spikformer-iand": lambda: sj_spikformer("iand"),
}


def main():
    out, only = sys.argv[1], set(sys.argv[2:])
    os.makedirs(out, exist_ok=True)
    for k, (name, make) in enumerate(CASES.items()):
        if only and name not in only:
            continue
        torch.manual_seed(k)
        gen = torch.Generator().manual_seed(k)
        net = make()
        functional.set_step_mode(net, "m")
        randomize(net, gen)
        if name.startswith("sj-spikformer"):
            calibrate(net, gen)
        net.eval()
        size = 13 if name == "sj-options" else SIZE
        x = 2.5 * torch.rand(N, 3, size, size, generator=gen)
        with torch.no_grad():
            functional.reset_net(net)
            if name.startswith("aap"):
                logits, logits_acc = net(x)
                io = {"x": x, "logits": logits, "logits_acc": logits_acc}
            else:
                io = {"x": x, "logits": net(x.unsqueeze(0).repeat(T, 1, 1, 1, 1)).mean(0)}
        save_file({n: t.contiguous() for n, t in net.state_dict().items()},
                  os.path.join(out, f"{name}.safetensors"))
        save_file({n: t.contiguous() for n, t in io.items()}, os.path.join(out, f"{name}.io.safetensors"))
        print(name, flush=True)


if __name__ == "__main__":
    main()
