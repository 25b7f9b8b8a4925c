"""How much a recipe's accuracy varies from run to run: the same recipe, fine-tuned with other seeds.

A full run's test accuracy is one draw: the fine-tune's batch order and augmentation (``finetune.seed``,
0 unless the recipe says otherwise) move it by a few tenths of a point on the flagship, as much as the
differences between the plans `deepslim auto` compares. This runs ``deepslim compress`` with the recipe
once per seed, every stage's ``finetune.seed`` set to it, into ``OUT/seed-N`` (a finished run is kept and
reused; a killed one resumes), and prints the test accuracy and loss per seed with their mean and spread:
how much the fine-tune alone moves the result (the pruning and the int8 calibration do not change with it).
Nothing is timed (the seeds change no shape): speed-ups come from ``auto_vs_recipe.py``.

    .venv/bin/python benchmarks/seed_spread.py --pretrained fmnist-resnet --recipe recipes/prune-quantize.yaml \\
        --seeds 0 1 2 --out runs/seeds-prune-quantize --json benchmarks/results/seeds/prune-quantize.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).parent))

from common import environment, markdown_table, write_json  # noqa: E402


def seeded_recipe(text: str, seed: int) -> str:
    """The recipe with ``finetune.seed`` set to ``seed`` in every stage that fine-tunes."""
    recipe = yaml.safe_load(text)
    for stage in recipe["stages"]:
        if isinstance(stage.get("finetune"), dict) and stage["finetune"].get("epochs"):
            stage["finetune"]["seed"] = seed
    return yaml.safe_dump(recipe, sort_keys=False)


def run_seed(args, seed: int) -> dict:
    folder = args.out / f"seed-{seed}"
    metrics, state = folder / "metrics.json", folder / "state.json"
    # metrics.json is written after every stage: only state.json's "done" says the run finished
    if not (state.is_file() and json.loads(state.read_text()).get("done")):
        folder.mkdir(parents=True, exist_ok=True)
        recipe = args.out / f"recipe-seed-{seed}.yaml"
        recipe.write_text(seeded_recipe(args.recipe.read_text(), seed))
        source = ["--pretrained", args.pretrained] if args.pretrained else [str(args.model)]
        subprocess.run([sys.executable, "-m", "deepslim", "compress", *source, "--recipe", str(recipe),
                        "--out", str(folder)], check=True)
    m = json.loads(metrics.read_text())
    base, final = m["baseline"]["accuracy"], m["final"]["accuracy"]
    return {"seed": seed, "accuracy": final, "baseline_accuracy": base, "drop": round(base - final, 4),
            "run_seconds": m.get("run_seconds")}


def summary(rows: list[dict]) -> dict:
    drops = [r["drop"] for r in rows]
    return {"mean_drop": statistics.fmean(drops), "stdev_drop": statistics.stdev(drops) if len(drops) > 1 else None,
            "min_drop": min(drops), "max_drop": max(drops)}


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--pretrained", help="a shipped model (deepslim zoo)")
    source.add_argument("--model", type=Path, help="a saved model folder")
    p.add_argument("--recipe", type=Path, required=True)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--out", type=Path, required=True, help="one compress run per seed under OUT/seed-N")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    rows = [run_seed(args, seed) for seed in args.seeds]
    stats = summary(rows)
    print(markdown_table(["seed", "test acc %", "vs input", "run"],
                         [[r["seed"], f"{r['accuracy']:.2f}", f"{-r['drop']:+.2f}",
                           f"{(r['run_seconds'] or 0) / 60:.1f} min"] for r in rows]))
    spread = f", stdev {stats['stdev_drop']:.2f}" if stats["stdev_drop"] is not None else ""
    print(f"loss: mean {stats['mean_drop']:.2f}{spread}, range {stats['min_drop']:.2f}-{stats['max_drop']:.2f} points")
    write_json(args.json, {"environment": environment(), "recipe": str(args.recipe), "runs": rows, **stats})


if __name__ == "__main__":
    main()
