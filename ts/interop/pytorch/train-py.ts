// train.py of an exported folder: torchrun/DDP training of model.py with dualstream's loss,
// optimizer and learning-rate schedule (read from config.json). Python source as text; see
// runtime-py.ts for why.
export const TRAIN_PY = String.raw`"""Trains the exported network with PyTorch DDP, as dualstream would train it.

    torchrun --nproc_per_node=8 train.py --train train.safetensors --val val.safetensors \
        --epochs 320 --batch-size 32 --out runs/a
    torchrun --nproc_per_node=2 train.py --data-module imagenet_data.py ...   (any torch Dataset)

Data: --train/--val name safetensors files holding "x" (float32 samples [N, ...], for a
"sequence" model [N, T, ...]) and "y" (labels), or --data-module names a Python file whose
datasets() returns (train, val) torch Datasets of (sample, label). Each process takes its
share through a DistributedSampler; gradients are averaged over processes (DDP), so the
effective batch is batch-size x processes. BatchNorm statistics stay per process unless
--sync-bn.

Loss, optimizer and schedule come from config.json ("training"): the loss is
w_s CE(y_s) + w_a CE(y_a) on the time-mean logits of both heads (dualstream's headWeights),
weight decay applies to conv/linear weights only, and the learning rate follows the schedule per
optimizer step. Checkpoints are safetensors state dicts with dualstream's tensor names
(<out>/last.safetensors and <out>/epoch-<n>.safetensors); metrics go to <out>/metrics.jsonl.
"""

import argparse
import importlib.util
import json
import math
import os
import time

import torch
import torch.distributed as dist
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

import model as exported

HERE = os.path.dirname(os.path.abspath(__file__))


def read_config(path=os.path.join(HERE, "config.json")):
    with open(path) as fh:
        return json.load(fh)


# --- loss ------------------------------------------------------------------------------------


def head_loss(kind, mean_logits, labels, smoothing=0.0):
    if kind == "crossEntropy":
        return F.cross_entropy(mean_logits, labels, label_smoothing=smoothing)
    if kind == "mseFiringRate":
        return F.mse_loss(mean_logits, F.one_hot(labels, mean_logits.shape[-1]).to(mean_logits.dtype))
    raise ValueError(f"loss {kind!r}")


def loss_and_heads(loss_spec, output, labels, heads):
    """output [T, N, heads * K] -> (sum_h w_h loss(mean_t y_h), [time-mean logits per head])."""
    mean = output.float().mean(0)
    k = mean.shape[-1] // heads
    weights = loss_spec.get("headWeights") or [1.0, 1.0]
    smoothing = loss_spec.get("labelSmoothing", 0.0)
    per_head = [mean[:, h * k:(h + 1) * k] for h in range(heads)]
    if heads == 1:
        return head_loss(loss_spec["type"], per_head[0], labels, smoothing), per_head
    total = sum(w * head_loss(loss_spec["type"], y, labels, smoothing) for w, y in zip(weights, per_head))
    return total, per_head


# --- optimizer and schedule ------------------------------------------------------------------


def make_optimizer(net, spec):
    """dualstream's optimizers: weight decay on conv/linear weights only (BN affine
    parameters, biases and neuron parameters are exempt)."""
    decay = [p for p in net.parameters() if p.dim() > 1]
    rest = [p for p in net.parameters() if p.dim() <= 1]
    wd = spec.get("weightDecay", 0.0)
    groups = [{"params": decay, "weight_decay": wd}, {"params": rest, "weight_decay": 0.0}]
    kind = spec["type"]
    if kind == "sgd":
        return torch.optim.SGD(groups, lr=spec["lr"], momentum=spec.get("momentum", 0.0),
                               dampening=spec.get("dampening", 0.0),
                               nesterov=spec.get("nesterov", False))
    if kind == "adam":
        return torch.optim.Adam(groups, lr=spec["lr"], betas=tuple(spec["betas"]), eps=spec["eps"])
    if kind == "adamW":
        return torch.optim.AdamW(groups, lr=spec["lr"], betas=tuple(spec["betas"]), eps=spec["eps"])
    raise ValueError(f"optimizer {kind!r}")


def lr_factor(schedule, step):
    """The rate of optimizer update number step (from 0) over the base rate: linear warm-up from
    warmupStartFactor, then constant, cosine annealing to minLr, or step decay."""
    warmup = schedule.get("warmupSteps", 0)
    start = schedule.get("warmupStartFactor", 0.1)
    if step < warmup:
        return start + (1.0 - start) * step / warmup
    s = step - warmup
    kind = schedule["type"]
    if kind == "constant":
        return 1.0
    if kind == "cosine":
        span = max(schedule["totalSteps"] - warmup, 1)
        min_factor = schedule.get("minLr", 0.0) / schedule["_baseLr"]
        if s >= span:
            return min_factor
        return min_factor + (1.0 - min_factor) * (1.0 + math.cos(math.pi * s / span)) / 2.0
    if kind == "step":
        return schedule.get("gamma", 0.1) ** (s // max(schedule["stepSize"], 1))
    raise ValueError(f"schedule {kind!r}")


def make_scheduler(optimizer, schedule, base_lr):
    schedule = dict(schedule, _baseLr=base_lr)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(schedule, step))


# --- data ------------------------------------------------------------------------------------


class TensorFile(torch.utils.data.Dataset):
    def __init__(self, path):
        t = load_file(path)
        self.x, self.y = t["x"].float(), t["y"].long()

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.x[i], self.y[i]


def datasets(args):
    if args.data_module:
        spec = importlib.util.spec_from_file_location("data_module", args.data_module)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.datasets()
    return TensorFile(args.train), (TensorFile(args.val) if args.val else None)


def to_model_input(net, x):
    # A sequence model takes [T, N, ...]; samples come [N, T, ...].
    return x.transpose(0, 1).contiguous() if net.encoding == "sequence" else x


@torch.no_grad()
def evaluate(net, data, batch_size, device, mode):
    net.eval()
    correct = count = 0
    loader = torch.utils.data.DataLoader(data, batch_size=batch_size, shuffle=False)
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        correct += (net.logits(to_model_input(net, x), mode).argmax(-1) == y).sum().item()
        count += len(y)
    net.train()
    return correct / max(count, 1)


def save(net, path, metadata):
    save_file(exported.state_for_safetensors(net), path, metadata={k: str(v) for k, v in metadata.items()})


# --- main ------------------------------------------------------------------------------------


def main():
    config = read_config()
    training = config.get("training") or {}
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--train", help="safetensors file with x and y")
    ap.add_argument("--val", help="safetensors file with x and y")
    ap.add_argument("--data-module", help="Python file whose datasets() returns (train, val)")
    ap.add_argument("--epochs", type=int, default=config.get("epochs") or 1)
    ap.add_argument("--batch-size", type=int, default=config.get("batchSize") or 32,
                    help="per process")
    ap.add_argument("--lr", type=float, help="base learning rate (default: the run's)")
    ap.add_argument("--init", default=os.path.join(HERE, "weights.safetensors"),
                    help="initial weights; 'fresh' for PyTorch's initialisation")
    ap.add_argument("--out", default="runs/pytorch")
    ap.add_argument("--amp", action="store_true", help="automatic mixed precision")
    ap.add_argument("--sync-bn", action="store_true", help="BatchNorm statistics over all processes")
    ap.add_argument("--workers", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    if not args.data_module and not args.train:
        ap.error("give --train FILE (and --val FILE) or --data-module FILE")

    distributed = "RANK" in os.environ
    rank, world = 0, 1
    device = torch.device(args.device)
    if distributed:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        rank, world = dist.get_rank(), dist.get_world_size()
        if device.type == "cuda":
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
            torch.cuda.set_device(device)
    torch.manual_seed(args.seed)

    net = exported.build()
    if args.init != "fresh":
        exported.load_weights(net, args.init)
    if args.sync_bn and distributed:
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    net.to(device).train()
    model = torch.nn.parallel.DistributedDataParallel(net) if distributed else net

    train_data, val_data = datasets(args)
    sampler = torch.utils.data.distributed.DistributedSampler(
        train_data, num_replicas=world, rank=rank, shuffle=True, seed=args.seed, drop_last=True)
    loader = torch.utils.data.DataLoader(train_data, batch_size=args.batch_size, sampler=sampler,
                                         drop_last=True, num_workers=args.workers)

    opt_spec = dict(training.get("optimizer") or {"type": "sgd", "lr": 0.1, "momentum": 0.9})
    if args.lr is not None:
        opt_spec["lr"] = args.lr
    schedule = dict(training.get("schedule") or {"type": "constant"})
    if schedule["type"] == "cosine":
        # Annealed over this run's optimizer steps, as dualstream's fit does for 'cosine'.
        schedule["totalSteps"] = args.epochs * len(loader)
    loss_spec = training.get("loss") or {"type": "crossEntropy"}
    optimizer = make_optimizer(net, opt_spec)
    scheduler = make_scheduler(optimizer, schedule, opt_spec["lr"])
    scaler = torch.amp.GradScaler(device.type, enabled=args.amp and device.type == "cuda")
    amp_dtype = torch.float16 if device.type == "cuda" else torch.bfloat16

    if rank == 0:
        os.makedirs(args.out, exist_ok=True)
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        started = time.time()
        sums = torch.zeros(3, dtype=torch.float64)  # loss * n, correct (spike head), n
        for x, y in loader:
            x, y = to_model_input(net, x.to(device)), y.to(device)
            optimizer.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=args.amp):
                out = model(x)
            loss, heads = loss_and_heads(loss_spec, out, y, net.heads)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            sums += torch.tensor([loss.item() * len(y), (heads[0].argmax(-1) == y).sum().item(), len(y)],
                                 dtype=torch.float64)
        if distributed:
            dist.all_reduce(sums)
        row = {"epoch": epoch, "loss": sums[0].item() / sums[2].item(),
               "accuracy": sums[1].item() / sums[2].item(), "samples": int(sums[2].item()),
               "processes": world, "seconds": time.time() - started,
               "learningRate": optimizer.param_groups[0]["lr"]}
        if rank == 0:
            if val_data is not None:
                row["validation"] = {mode: evaluate(net, val_data, args.batch_size, device, mode)
                                     for mode in (["fsnn", "dsnn"] if net.heads == 2 else ["fsnn"])}
            meta = {"format": "dualstream-pytorch-export/1", "epoch": epoch + 1}
            save(net, os.path.join(args.out, f"epoch-{epoch + 1}.safetensors"), meta)
            save(net, os.path.join(args.out, "last.safetensors"), meta)
            with open(os.path.join(args.out, "metrics.jsonl"), "a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(json.dumps(row), flush=True)
        if distributed:
            dist.barrier()
    if distributed:
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
`
