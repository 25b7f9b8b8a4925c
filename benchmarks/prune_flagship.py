"""Structured pruning of the shipped fmnist-resnet to 1/2 and 1/4 of its MACs.

Three ways to the same MAC budget, each followed by the same short fine-tune:
  - adaptive (deepslim): walk to the budget in steps of 5% of the MACs, each step keeping the
    group whose pruning loses the least validation accuracy per MAC saved, measured on the whole
    pruned model, then (--step-finetune-images) a short fine-tune (NetAdapt-style; one walk to
    1/4 also gives 1/2);
  - sensitivity (deepslim): per-layer ratios from a one-layer-at-a-time sensitivity scan
    (validation split, BatchNorm statistics re-estimated in every trial; with
    --scan-finetune-images each trial also recovers on that many training images before it is
    judged, against the unpruned model given the same fine-tune), measured to fit the budget;
  - peer ("the plain way"): one uniform ratio for every layer, L2 magnitude, Torch-Pruning's default;
    "uniform-matched" is the same with extra fine-tune epochs matching the training the adaptive
    walk's short fine-tunes used (rounded up to whole epochs), so both saw as many images.
Both pruned models get their BatchNorm statistics re-estimated on 2,048 training images before
the fine-tune (the "before FT" column).
Accuracy on the full 10,000-image test split; latency of each pruned model against the unpruned one,
timed interleaved in this process on PyTorch eager and ONNX Runtime (shared/BENCHMARKING.md).
With --seeds 0,1,... every pruned model is fine-tuned once per seed and the row reports the mean
(each seed's accuracy is in the JSON): one fine-tune's seed noise is about 0.1-0.2 points.

    .venv/bin/python benchmarks/prune_flagship.py --finetune-epochs 3 --json benchmarks/results/prune_flagship.json
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import SPEEDUP_HEADERS, environment, markdown_table, speedup_cells, uniform_to_budget, write_json  # noqa: E402

import deepslim  # noqa: E402
from deepslim.core import log  # noqa: E402
from deepslim.profiling import compare_latency  # noqa: E402
from deepslim.profiling.counting import count_ops  # noqa: E402
from deepslim.prune import ChannelPruning, adaptive_prune_, prune_, prune_to_budget, sensitivity_scan  # noqa: E402
from deepslim.train import TrainConfig, Trainer, evaluate, recalibrate_batchnorm_  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--budgets", default="0.5,0.25", help="fractions of the baseline MACs")
    parser.add_argument("--ratios", default="0.25,0.5,0.75,0.9", help="sensitivity scan ratios")
    parser.add_argument("--methods", default="adaptive,sensitivity,uniform-l2",
                        help="comma-separated: adaptive, sensitivity, uniform-l2, uniform-matched")
    parser.add_argument("--step", type=float, default=0.05, help="adaptive: MACs removed per step (fraction)")
    parser.add_argument("--step-finetune-images", type=int, default=12800,
                        help="adaptive: training images of the short fine-tune after each step (0: none)")
    parser.add_argument("--scan-finetune-images", type=int, default=0,
                        help="sensitivity: training images each scan trial recovers on before it is judged (0: none)")
    parser.add_argument("--seeds", default="0", help="comma-separated fine-tune seeds; rows report the mean")
    parser.add_argument("--latency-seconds", type=float, default=1.0)
    parser.add_argument("--subset", type=int, help="smoke runs only: fine-tune on a subset")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    data = deepslim.load_dataset("fashion-mnist", subset=args.subset)
    base = deepslim.load_pretrained("fmnist-resnet")
    example = torch.randn(1, 1, 28, 28)
    base_macs = count_ops(base, (example,)).macs
    base_acc = evaluate(base, data.test)["accuracy"]
    base_params = sum(p.numel() for p in base.parameters())
    methods = [m.strip() for m in args.methods.split(",")]
    fractions = [float(b) for b in args.budgets.split(",")]
    calibration = data.train.images[:2048]
    search_seconds, scan, walk = {}, None, None
    if "sensitivity" in methods:
        started = time.perf_counter()
        scan = sensitivity_scan(base, data.val, example, ratios=tuple(float(r) for r in args.ratios.split(",")),
                                calibration_images=calibration, train_data=data.train,
                                finetune_images=args.scan_finetune_images)
        search_seconds["sensitivity scan"] = time.perf_counter() - started
    if "adaptive" in methods:
        started = time.perf_counter()
        walked = copy.deepcopy(base)
        walk = adaptive_prune_(walked, data.val, min(fractions) * base_macs, example, step=args.step,
                               calibration_images=calibration, milestones=[f * base_macs for f in fractions],
                               train_data=data.train, finetune_images=args.step_finetune_images)
        search_seconds["adaptive walk"] = time.perf_counter() - started
    walk_epochs = 0
    if walk is not None and args.step_finetune_images:
        walk_epochs = math.ceil(len(walk.history) * args.step_finetune_images / len(data.train))
    results = [{"name": "unpruned", "accuracy": base_acc, "macs": base_macs, "params": base_params}]
    for fraction in fractions:
        budget = fraction * base_macs
        for method in methods:
            model = copy.deepcopy(base)
            if method == "adaptive":
                last = budget == min(fractions) * base_macs
                model = copy.deepcopy(walked) if last else walk.model_at(budget)
                found = walk.ratios if last else next(m for m in walk.milestones if m["budget"] == budget)["ratios"]
                detail = {k: round(v, 3) for k, v in found.items()}
            elif method == "sensitivity":
                ratios, _ = prune_to_budget(model, scan, budget, example)
                detail = {k: round(v, 3) for k, v in ratios.items()}
            else:
                ratio = uniform_to_budget(base, budget, example)
                prune_(model, ChannelPruning(ratio=ratio, importance="l2"), example_inputs=example)
                detail = {"uniform_ratio": round(ratio, 3)}
            recalibrate_batchnorm_(model, calibration)
            pruned_acc = evaluate(model, data.test)["accuracy"]
            t0 = time.perf_counter()
            epochs = args.finetune_epochs + (walk_epochs if method == "uniform-matched" else 0)
            pruned, per_seed = model, []
            for seed in (int(s) for s in args.seeds.split(",")):
                model = copy.deepcopy(pruned)
                Trainer(model, TrainConfig(epochs=epochs, lr=args.lr, schedule="cosine", seed=seed)).fit(data.train)
                per_seed.append(evaluate(model, data.test)["accuracy"])
            tuned_acc = round(sum(per_seed) / len(per_seed), 3)
            latency = compare_latency(base, model.eval(), example, min_seconds=args.latency_seconds)
            row = {"name": f"{method} 1/{round(1 / fraction)} MACs", "method": method, "budget": fraction,
                   "finetune_epochs": epochs, "accuracy_before_finetune": pruned_acc, "accuracy": tuned_acc,
                   "accuracy_per_seed": per_seed,
                   "macs": count_ops(model, (example,)).macs,
                   "params": sum(p.numel() for p in model.parameters()), "finetune_seconds": time.perf_counter() - t0,
                   "ratios": detail, "latency": [c.to_dict() for c in latency]}
            log(f"{row['name']}: {pruned_acc:.2f}% -> {tuned_acc:.2f}% after fine-tune (seeds: {per_seed})")
            results.append(row)

    headers = ["model", "test acc %", "before FT", "MACs (M)", "params (k)", *SPEEDUP_HEADERS]
    rows = []
    for r in results:
        row = [r["name"], f"{r['accuracy']:.2f}", f"{r.get('accuracy_before_finetune', r['accuracy']):.2f}",
               f"{r['macs'] / 1e6:.2f}", f"{r['params'] / 1e3:.0f}"]
        row += speedup_cells(r["latency"]) if "latency" in r else ["1.00x"] * len(SPEEDUP_HEADERS)
        rows.append(row)
    print(markdown_table(headers, rows))
    env = environment()
    searches = "; ".join(f"{k} {v:.0f} s" for k, v in search_seconds.items())
    print(f"\nfine-tune: {args.finetune_epochs} epochs SGD lr {args.lr} cosine; {searches} "
          f"on {len(data.val)} validation images; {env}")
    write_json(args.json, {"args": vars(args) | {"json": str(args.json)}, "results": results,
                           "sensitivity": scan.to_dict() if scan else None,
                           "adaptive": walk.to_dict() if walk else None,
                           "search_seconds": search_seconds, "environment": env})
    return 0


if __name__ == "__main__":
    sys.exit(main())
