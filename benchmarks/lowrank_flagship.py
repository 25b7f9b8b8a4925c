"""Low-rank factorization of the shipped fmnist-resnet, plain vs after force regularization.

Two starting points, each factorized to the same whole-model MAC ratios with the same rank
rule (every layer keeps the same fraction of its squared singular values) and the same
short fine-tune:
  - plain: the shipped weights, factorized directly (SVD-based, the usual way);
  - force: the shipped weights after --force-epochs of training with force regularization
    (Wen et al. 2017, degradation form, strength --strength), then the same factorization.
Also reported, without fine-tune: the MACs each needs to keep 90% energy in every layer
(the rank reduction force regularization buys), and the accuracy of the force-trained
model before factorization. Accuracy on the full 10,000-image test split; latency of each
factorized model against the unfactorized one, interleaved, on PyTorch eager and ONNX
Runtime (shared/BENCHMARKING.md).

    .venv/bin/python benchmarks/lowrank_flagship.py --json benchmarks/results/lowrank_flagship.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import SPEEDUP_HEADERS, environment, markdown_table, speedup_cells, write_json  # noqa: E402

import deepslim  # noqa: E402
from deepslim.core import log  # noqa: E402
from deepslim.lowrank import Factorization, ForceRegularization, factorize_  # noqa: E402
from deepslim.profiling import compare_latency  # noqa: E402
from deepslim.train import TrainConfig, Trainer, evaluate, recalibrate_batchnorm_  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", default="svd", choices=("svd", "spatial", "tucker"))
    parser.add_argument("--mac-ratios", default="0.6,0.4,0.25")
    parser.add_argument("--strength", type=float, default=0.02, help="force regularization strength")
    parser.add_argument("--force-epochs", type=int, default=2)
    parser.add_argument("--finetune-epochs", type=int, default=1)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--latency-seconds", type=float, default=1.0)
    parser.add_argument("--subset", type=int, help="smoke runs only: train on a subset")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    data = deepslim.load_dataset("fashion-mnist", subset=args.subset)
    example = torch.randn(1, 1, 28, 28)
    calibration = data.train.images[:2048]
    base = deepslim.load_pretrained("fmnist-resnet").eval()
    base_acc = evaluate(base, data.test)["accuracy"]

    started = time.perf_counter()
    forced = copy.deepcopy(base)
    cfg = TrainConfig(epochs=args.force_epochs, lr=args.lr, schedule="cosine", seed=0)
    Trainer(forced, cfg, callbacks=[ForceRegularization(forced, strength=args.strength)]).fit(data.train)
    force_seconds = time.perf_counter() - started
    forced_acc = evaluate(forced.eval(), data.test)["accuracy"]
    starts = {"plain": base, "force": forced}

    results = [{"name": "unfactorized", "accuracy": base_acc, "macs": _macs(base, example)},
               {"name": f"force-trained {args.force_epochs} ep, unfactorized", "accuracy": forced_acc,
                "macs": _macs(forced, example), "seconds": force_seconds}]
    for start_name, start in starts.items():  # rank each start needs for 90% energy everywhere
        model = copy.deepcopy(start)
        plan = factorize_(model, Factorization(method=args.method, energy=0.9), example)
        recalibrate_batchnorm_(model, calibration)
        results.append({"name": f"{start_name}: energy 0.9, no fine-tune", "start": start_name,
                        "accuracy": evaluate(model.eval(), data.test)["accuracy"], "macs": plan.macs_after,
                        "params": plan.params_after, "ranks": {k: v["rank"] for k, v in plan.layers.items()}})
    for ratio in (float(r) for r in args.mac_ratios.split(",")):
        for start_name, start in starts.items():
            model = copy.deepcopy(start)
            plan = factorize_(model, Factorization(method=args.method, mac_ratio=ratio), example)
            recalibrate_batchnorm_(model, calibration)
            before_ft = evaluate(model.eval(), data.test)["accuracy"]
            t0 = time.perf_counter()
            cfg = TrainConfig(epochs=args.finetune_epochs, lr=args.lr, schedule="cosine", seed=0)
            Trainer(model, cfg).fit(data.train)
            tuned = evaluate(model.eval(), data.test)["accuracy"]
            latency = compare_latency(base, model.eval(), example, min_seconds=args.latency_seconds)
            energy = min(v["energy"] for v in plan.layers.values())
            row = {"name": f"{start_name}: MAC ratio {ratio}", "start": start_name, "mac_ratio": ratio,
                   "accuracy_before_finetune": before_ft, "accuracy": tuned, "macs": plan.macs_after,
                   "params": plan.params_after, "energy_kept": energy, "finetune_seconds": time.perf_counter() - t0,
                   "ranks": {k: v["rank"] for k, v in plan.layers.items()},
                   "latency": [c.to_dict() for c in latency]}
            log(f"{row['name']}: {before_ft:.2f}% -> {tuned:.2f}% after fine-tune (energy kept {energy:.3f})")
            results.append(row)

    headers = ["model", "test acc %", "before FT", "MACs (M)", "energy kept", *SPEEDUP_HEADERS]
    rows = []
    for r in results:
        row = [r["name"], f"{r['accuracy']:.2f}", f"{r.get('accuracy_before_finetune', r['accuracy']):.2f}",
               f"{r['macs'] / 1e6:.2f}", f"{r['energy_kept']:.3f}" if "energy_kept" in r else ""]
        row += speedup_cells(r.get("latency", []))
        rows.append(row)
    print(markdown_table(headers, rows))
    env = environment()
    print(f"\nmethod {args.method}; force regularization strength {args.strength}, {args.force_epochs} epochs "
          f"({force_seconds:.0f} s); fine-tune {args.finetune_epochs} epoch(s) SGD lr {args.lr} cosine; {env}")
    write_json(args.json, {"args": vars(args) | {"json": str(args.json)}, "results": results, "environment": env})
    return 0


def _macs(model, example) -> int:
    from deepslim.profiling.counting import count_ops

    return count_ops(model.eval(), (example,)).macs


if __name__ == "__main__":
    sys.exit(main())
