"""The from-scratch control of benchmarks/ofa.py: subnets of `ofa-mbconv` trained alone, from random
weights, for as many epochs as the whole progressive-shrinking run (15 + 6 + 8 + 10 = 39), on the same
55,000 training images, with the optimiser of the supernet's first phase (SGD Nesterov, lr 0.1 cosine,
weight decay 3e-5, batch 128, flip + 2-pixel crop, channels_last).

The three archs are uniform (one depth, kernel and expand ratio everywhere) and were fixed before the
supernet was trained, so that these runs could share the machine with it; benchmarks/ofa.py judges
the same archs from the supernet. Resumable: each arch checkpoints every epoch under --work, and
finished archs are kept in --json (written after each one).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ofa_scratch.py --json benchmarks/results/ofa_scratch.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import deepslim
from deepslim.export.files import write_json_atomic
from deepslim.nas import OFASupernet
from deepslim.nas.space import get_space
from deepslim.nas.subnet import OFASubnet, extract_subnet
from deepslim.profiling import count_ops
from deepslim.profiling.environment import environment
from deepslim.train import TrainConfig, train

# (depth, kernel, expand) everywhere; about 2.4M, 4.0M and 6.0M MACs
UNIFORM_ARCHS = {"d2-k3-e3": (2, 3, 3), "d2-k5-e4": (2, 5, 4), "d3-k5-e4": (3, 5, 4)}
TOTAL_EPOCHS = 39


def uniform_arch(space, depth: int, kernel: int, expand: int):
    n = space.num_stages
    return space.validate({"depths": [depth] * n, "kernels": [[kernel] * depth] * n,
                           "expands": [[expand] * depth] * n})


def fresh_subnet(space, arch, seed: int) -> OFASubnet:
    """A standalone subnet of ``arch`` with PyTorch's default initialisation, as any new model gets."""
    torch.manual_seed(seed)
    model = extract_subnet(OFASupernet.from_space(space), arch)
    for module in model.modules():
        if module is not model and hasattr(module, "reset_parameters"):
            module.reset_parameters()
    return model


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--archs", default=",".join(UNIFORM_ARCHS), help="names of UNIFORM_ARCHS to train")
    parser.add_argument("--epochs", type=int, default=TOTAL_EPOCHS)
    parser.add_argument("--work", type=Path, default=Path("runs/ofa-scratch"))
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/ofa_scratch.json"))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    space = get_space("ofa-mbconv")
    data = deepslim.load_dataset("fashion-mnist", seed=args.seed)
    done = json.loads(args.json.read_text()) if args.json.is_file() else {}
    results = done.get("archs", {})
    config = TrainConfig(epochs=args.epochs, batch_size=128, lr=0.1, momentum=0.9, nesterov=True,
                         weight_decay=3e-5, schedule="cosine", augment=True, crop_padding=2, flip=True,
                         seed=args.seed)
    for name in args.archs.split(","):
        if name in results:
            print(f"{name}: done before ({results[name]['test_accuracy']:.2f}%)")
            continue
        arch = uniform_arch(space, *UNIFORM_ARCHS[name])
        model = fresh_subnet(space, arch, args.seed).to(memory_format=torch.channels_last)
        work = args.work / name
        work.mkdir(parents=True, exist_ok=True)
        checkpoint = work / "checkpoint.pt"
        started = time.perf_counter()
        history = train(model, data.train, config, checkpoint_path=checkpoint, resume=checkpoint.is_file())
        seconds = time.perf_counter() - started
        model = model.to(memory_format=torch.contiguous_format).eval()
        model.__dict__["deepslim_metadata"] = {"nas": {"space": space.to_dict(), "arch": arch.to_dict()}}
        test = deepslim.evaluate(model, data.test)
        val = deepslim.evaluate(model, data.val)
        counts = count_ops(model, data.test.images[:1])
        deepslim.save(model, work / "model", overwrite=True)
        results[name] = {"arch": arch.to_dict(), "epochs": args.epochs, "test_accuracy": float(test["accuracy"]),
                         "val_accuracy": float(val["accuracy"]), "macs": int(counts.macs),
                         "params": int(counts.params), "train_seconds_this_run": round(seconds, 1),
                         "last_epoch": history[-1] if history else None}
        print(f"{name}: test {test['accuracy']:.2f}% after {args.epochs} epochs from scratch")
        out = {"command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ofa_scratch.py", "config": config.to_dict(),
               "environment": environment(), "archs": results}
        args.json.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.json, out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
