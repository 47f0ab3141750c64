"""Converts a PyTorch checkpoint (.pth/.pt) to a safetensors state_dict for `dualstream import`.

    python pth-to-safetensors.py model.pth model.safetensors [--key state_dict]

Takes the state_dict itself or the entry named by --key (default: "state_dict", "model" or
"net" when present), drops DDP's "module." prefix, converts floating tensors to float32 and
keeps integer counters (BN's num_batches_tracked, which the import ignores). Loads with
weights_only=True, so a pickle cannot run code.
"""

import argparse

import torch
from safetensors.torch import save_file


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--key", help="the checkpoint entry holding the state_dict")
    args = ap.parse_args()
    obj = torch.load(args.src, map_location="cpu", weights_only=True)
    if args.key:
        obj = obj[args.key]
    else:
        for key in ("state_dict", "model", "net"):
            if isinstance(obj, dict) and isinstance(obj.get(key), dict):
                obj = obj[key]
                break
    state = {}
    for name, t in obj.items():
        if not torch.is_tensor(t):
            continue
        if name.startswith("module."):
            name = name[len("module."):]
        state[name] = (t.float() if t.is_floating_point() else t).contiguous()
    save_file(state, args.dst)
    print(f"{args.dst}: {len(state)} tensors")


if __name__ == "__main__":
    main()
