"""What `deepslim auto`'s search sees of a plan: the demo's plan and the same plan with one block dropped, at proxy fidelity.

Runs both plans exactly as a proxy trial does (8,192 training images, 0.15 of the plan's epochs, scored
on the validation split, timed in turns against the input model at batch 1), so their proxy loss can be
set beside the full runs' (`make demo`, `recipes/drop-prune-quantize.yaml`): how much the proxy
overstates each plan's loss decides whether the search keeps it within ``--proxy-slack``.

    .venv/bin/python benchmarks/auto_proxy_check.py runs/proxy-drop   # about 1 minute on 2 cores
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import deepslim
from deepslim.auto.engine import proxy_epochs
from deepslim.auto.space import ImageSpace, recipe_text
from deepslim.auto.trial import ProxyRun
from deepslim.pipeline import parse_recipe

DEMO_PLAN = {"ratio": 0.5, "allocation": "uniform", "round_to": 8, "factorize": "none", "quantize": "ptq-percentile",
             "epochs": 14}  # recipes/prune-quantize.yaml as a plan


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/proxy-drop")
    out.mkdir(parents=True, exist_ok=True)
    model = deepslim.load_pretrained("fmnist-resnet")
    data = deepslim.load_dataset("fashion-mnist")
    proxy = ProxyRun(model, data, torch.device("cpu"), images=8192, batch=1, latency_seconds=0.5, seed=0)
    base = proxy.baseline(out / "baseline")
    results = {"baseline": base}
    space = ImageSpace(blocks=1)
    for label, dropped in (("demo-plan", 0), ("drop-plan", 1)):
        plan = {"drop_blocks": dropped, **DEMO_PLAN}
        recipe = parse_recipe(recipe_text(space, plan, epochs=proxy_epochs(plan, 0.15)))
        row = proxy.run(recipe, out / label, out / "baseline" / "model.onnx")
        row["drop"] = base["accuracy"] - row["accuracy"]
        results[label] = row
        print(f"{label}: {space.describe(plan)}: validation {row['accuracy']:.2f}% ({-row['drop']:+.2f}), "
              f"{row['speedup']:.2f}x at batch 1")
    (out / "proxy_drop.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
