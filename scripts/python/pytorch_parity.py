"""Runs exported dualstream models (`dualstream export --format pytorch`) in PyTorch for the
parity proof in __test__/pytorch.spec.ts.

    python pytorch_parity.py manifest.json

manifest.json: a list of cases {"dir": export folder, "input": safetensors with "x" (the
model's input layout) and "y" (labels), "steps": n, "out": result file}. For each case the
result file holds the eval-mode time-mean logits ("logits.fsnn", and "logits.dsnn" for a
dual-stream model), then, after n training steps on the same batch with train.py's loss,
optimizer and schedule (from the folder's config.json), "loss.<i>" and the whole state dict
("state.<name>").
"""

import importlib.util
import json
import sys

import torch
from safetensors.torch import load_file, save_file

torch.set_num_threads(1)


def load_module(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def run_case(case):
    folder = case["dir"]
    # train.py imports the folder's model.py as `model`.
    model = load_module("model", f"{folder}/model.py")
    train = load_module("train", f"{folder}/train.py")
    config = train.read_config(f"{folder}/config.json")
    batch = load_file(case["input"])
    x, y = batch["x"], batch["y"].long()

    net = model.load_weights(model.build(), f"{folder}/weights.safetensors")
    out = {}
    net.eval()
    with torch.no_grad():
        out["logits.fsnn"] = net.logits(x, "fsnn")
        if net.heads == 2:
            out["logits.dsnn"] = net.logits(x, "dsnn")

    net.train()
    training = config["training"]
    optimizer = train.make_optimizer(net, training["optimizer"])
    scheduler = train.make_scheduler(optimizer, training["schedule"], training["optimizer"]["lr"])
    for i in range(case["steps"]):
        optimizer.zero_grad()
        loss, _ = train.loss_and_heads(training["loss"], net(x), y, net.heads)
        loss.backward()
        optimizer.step()
        scheduler.step()
        out[f"loss.{i}"] = loss.detach().reshape(1)
    for k, v in model.state_for_safetensors(net).items():
        out[f"state.{k}"] = v
    save_file({k: v.detach().float().contiguous() for k, v in out.items()}, case["out"])


def main():
    with open(sys.argv[1]) as fh:
        cases = json.load(fh)
    for case in cases:
        run_case(case)
        print(case["out"], flush=True)


if __name__ == "__main__":
    main()
