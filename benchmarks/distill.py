"""Knowledge distillation from the shipped fmnist-resnet: a small student three ways, and pruned recovery.

Part 1: a narrow fmnist-cnn student (widths 8/16/32, hidden 64: ~25k params, ~0.53M MACs,
about 1/100 of the teacher's MACs) trained with the same epochs, data and seed (a) from
labels only, (b) with logit KD (T=4, alpha=0.9), (c) with KD + FitNets hints (student
stage 2 -> teacher stages.1, student stage 3 -> teacher stages.2, through 1x1 adapters);
three seeds each, full-test accuracy mean +- std.
Part 2: the flagship pruned to 1/4 of its MACs (uniform L2 channel pruning, BN re-estimated),
then fine-tuned for the same budget with and without KD from the unpruned flagship.

    .venv/bin/python benchmarks/distill.py --json benchmarks/results/distill.json
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import environment, markdown_table, uniform_to_budget, write_json  # noqa: E402

import deepslim  # noqa: E402
from deepslim.core import log  # noqa: E402
from deepslim.distill import KD, distill  # noqa: E402
from deepslim.profiling.counting import count_ops  # noqa: E402
from deepslim.prune import ChannelPruning, prune_  # noqa: E402
from deepslim.train import TrainConfig, Trainer, evaluate, recalibrate_batchnorm_  # noqa: E402

STUDENT = {"widths": (8, 16, 32), "hidden": 64}
HINTS = {"2": "stages.1", "4": "stages.2"}


def student_runs(data, teacher, args) -> list[dict]:
    variants = {"labels only": None, "logit KD": KD(temperature=4.0, alpha=0.9),
                "KD + hints": KD(temperature=4.0, alpha=0.9, hints=HINTS, hint_weight=args.hint_weight)}
    rows = []
    for name, kd in variants.items():
        accs, seconds = [], []
        for seed in range(args.seeds):
            torch.manual_seed(seed)
            student = deepslim.create_model("fmnist-cnn", **STUDENT)
            cfg = TrainConfig(epochs=args.epochs, lr=0.05, schedule="cosine", seed=seed)
            t0 = time.perf_counter()
            if kd is None:
                Trainer(student, cfg).fit(data.train)
            else:
                distill(student, teacher, data.train, cfg, kd)
            seconds.append(time.perf_counter() - t0)
            accs.append(evaluate(student, data.test)["accuracy"])
            log(f"{name} seed {seed}: {accs[-1]:.2f}%")
        rows.append({"name": name, "accuracies": accs, "mean": statistics.mean(accs),
                     "std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
                     "seconds_per_run": statistics.mean(seconds)})
    return rows


def pruned_recovery(data, teacher, args) -> list[dict]:
    example = torch.randn(1, 1, 28, 28)
    base_macs = count_ops(teacher, (example,)).macs
    ratio = uniform_to_budget(teacher, 0.25 * base_macs, example)
    pruned = copy.deepcopy(teacher)
    plan = prune_(pruned, ChannelPruning(ratio=ratio, importance="l2"), example_inputs=example)
    recalibrate_batchnorm_(pruned, data.train.images[:2048])
    start_acc = evaluate(pruned, data.test)["accuracy"]
    rows = []
    for name, kd in (("fine-tune, labels only", None), ("fine-tune with KD", KD(temperature=4.0, alpha=0.9))):
        model = copy.deepcopy(pruned)
        cfg = TrainConfig(epochs=args.recovery_epochs, lr=0.01, schedule="cosine", seed=0)
        t0 = time.perf_counter()
        if kd is None:
            Trainer(model, cfg).fit(data.train)
        else:
            distill(model, teacher, data.train, cfg, kd)
        rows.append({"name": name, "accuracy": evaluate(model, data.test)["accuracy"], "start_accuracy": start_acc,
                     "uniform_ratio": ratio, "macs": plan.macs_after, "seconds": time.perf_counter() - t0})
        log(f"pruned 1/4 MACs, {name}: {start_acc:.2f}% -> {rows[-1]['accuracy']:.2f}%")
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5, help="student epochs")
    parser.add_argument("--subset", type=int, default=10000, help="student training images (default 10000)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--hint-weight", type=float, default=1.0)
    parser.add_argument("--recovery-epochs", type=int, default=1)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    teacher = deepslim.load_pretrained("fmnist-resnet").eval()
    small = deepslim.load_dataset("fashion-mnist", subset=args.subset)
    students = student_runs(small, teacher, args)
    full = deepslim.load_dataset("fashion-mnist")
    recovery = pruned_recovery(full, teacher, args)

    print(markdown_table(["student (fmnist-cnn 8/16/32)", "test acc % mean +- std", "per seed", "s / run"],
                         [[r["name"], f"{r['mean']:.2f} +- {r['std']:.2f}", ", ".join(f"{a:.2f}" for a in r["accuracies"]),
                           f"{r['seconds_per_run']:.0f}"] for r in students]))
    print()
    print(markdown_table(["1/4-MAC pruned flagship", "after BN re-estimation", "test acc %", "MACs (M)", "s"],
                         [[r["name"], f"{r['start_accuracy']:.2f}", f"{r['accuracy']:.2f}", f"{r['macs'] / 1e6:.2f}",
                           f"{r['seconds']:.0f}"] for r in recovery]))
    env = environment()
    print(f"\nstudents: {args.epochs} epochs on {args.subset} training images, SGD lr 0.05 cosine, seeds 0..{args.seeds - 1};"
          f" recovery: {args.recovery_epochs} epoch(s) on 55,000 images, SGD lr 0.01 cosine; {env}")
    write_json(args.json, {"args": vars(args) | {"json": str(args.json)}, "students": students,
                           "pruned_recovery": recovery, "environment": env})
    return 0


if __name__ == "__main__":
    sys.exit(main())
