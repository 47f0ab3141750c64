"""Writes crates/core/tests/fixtures/ema-torch.json: what
torch.optim.swa_utils.AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay),
use_buffers=True) holds after each of a few training steps of a small conv-BN-linear model, for
crates/core/tests/integration/unit/optim_ema.rs (no Python needed there). Recorded: the
model's parameters and BN running statistics after every step (what the average reads; the same
for every decay) and, per decay, the average's copies of them after every update. BN's num_batches_tracked (an integer counter
the engine does not keep) is left out. Regenerate with

    /work/venv-interop/bin/python scripts/reference/ema_fixture.py

(any environment with torch; the file records the versions and the CPU kernels torch used).
"""

import os

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from fixture_files import write_json

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "crates", "core", "tests", "fixtures", "ema-torch.json")
STEPS = 4
# Both lerp forms (weight 1 - decay below and at or above 0.5), and 0 (the average is the value).
DECAYS = [0.999, 0.6, 0.5, 0.0]
# With the warm-up min(decay, (1 + n) / (10 + n)), n the updates before (AveragedModel's n_averaged).
WARMUP_DECAYS = [0.999, 0.95]


def averaged(module):
    # AveragedModel's own order: parameters, then buffers.
    named = list(module.named_parameters()) + list(module.named_buffers())
    return [(n, t) for n, t in named if not n.endswith("num_batches_tracked")]


def flat(t):
    return t.detach().reshape(-1).tolist()


def net():
    # Sizes with tails past whole 16-lane vectors (81, 3, 135) so both kernel paths are checked.
    return nn.Sequential(nn.Conv2d(3, 3, 3, bias=False), nn.BatchNorm2d(3), nn.Flatten(), nn.Linear(3 * 3 * 3, 5))


def warmup_avg_fn(decay):
    # get_ema_multi_avg_fn's update with the decay of update n + 1.
    @torch.no_grad()
    def update(ema_params, model_params, n_averaged):
        n = int(n_averaged.item())
        d = min(decay, (1 + n) / (10 + n))
        if torch.is_floating_point(ema_params[0]):
            torch._foreach_lerp_(ema_params, model_params, 1 - d)
        else:  # num_batches_tracked, left out of the fixture
            for e, m in zip(ema_params, model_params):
                e.copy_(e * d + m * (1 - d))

    return update


def run(decay, warmup=False):
    torch.manual_seed(20261207)
    model = net()
    avg_fn = warmup_avg_fn(decay) if warmup else get_ema_multi_avg_fn(decay)
    ema = AveragedModel(model, multi_avg_fn=avg_fn, use_buffers=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    steps = []
    for _ in range(STEPS):
        x = torch.randn(4, 3, 5, 5) * 2
        y = torch.randint(0, 5, (4,))
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        ema.update_parameters(model)
        steps.append({
            "values": [flat(t) for _, t in averaged(model)],
            "average": [flat(t) for _, t in averaged(ema.module)],
        })
    return {"decay": decay, "warmup": warmup, "steps": steps}


def values_once(runs):
    # The average does not feed back into training: every run's model takes the same values.
    values = [s.pop("values") for s in runs[0]["steps"]]
    for r in runs[1:]:
        assert [s.pop("values") for s in r["steps"]] == values
    return values


def main():
    model = net()
    runs = [run(d) for d in DECAYS] + [run(d, warmup=True) for d in WARMUP_DECAYS]
    fixture = {
        "generator": f"scripts/reference/ema_fixture.py, torch {torch.__version__}, "
        f"CPU kernels {torch.backends.cpu.get_cpu_capability()}",
        "names": [n for n, _ in averaged(model)],
        "shapes": [list(t.shape) for _, t in averaged(model)],
        "values": values_once(runs),
        "runs": runs,
    }
    write_json(OUT, fixture)
    print(f"{OUT}: {len(runs)} decays x {STEPS} steps, {os.path.getsize(OUT) // 1024} KB")


if __name__ == "__main__":
    main()
