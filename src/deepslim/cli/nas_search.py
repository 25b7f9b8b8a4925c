"""`deepslim nas search`: the most accurate subnet of a trained supernet under a latency, MACs or params limit.

The subnet is saved as a standalone model (``deepslim.save``; every verb applies to it) with its arch and the
search summary in its metadata, beside ``search.json`` (the whole history, the best, whether it is feasible).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core import DeepslimError, log
from ..data import load_dataset
from ..export.model_card import write_model_card
from ..nas.space import MBConvSpace
from .args import (
    add_command,
    amount,
    check_output_dir,
    command_line,
    data_options,
    data_record,
    print_json,
    replace_output_dir,
)
from .options import refuse_unless


def add_parser(sub) -> None:
    p = add_command(sub, "search", help="search the supernet for the best subnet under a limit",
                    description="Search a trained supernet (the folder of `deepslim nas supernet`) for the most "
                                "accurate subnet under --latency-ms (predicted by DIR/latency.json, see `deepslim "
                                "nas latency-table`), --macs and/or --params. Each candidate is extracted, its "
                                "BatchNorm recalibrated on --calibration-size training images, and judged on the "
                                "validation split. The best is saved in --out as a standalone model, with "
                                "search.json (history, best, feasible flag and message). When no subnet meets the "
                                "limits, it says so and saves the closest.",
                    epilog="Example: deepslim nas search runs/ofa --latency-ms 0.1 --batch 1 --strategy evolution "
                           "--budget 200 --out runs/ofa-best")
    p.add_argument("dir", type=Path, metavar="DIR", help="the folder of `deepslim nas supernet`")
    p.add_argument("--latency-ms", type=float, metavar="X",
                   help="limit on the predicted ONNX Runtime latency in ms (needs DIR/latency.json)")
    p.add_argument("--batch", type=int, metavar="B", help="batch size the latency limit is for; default 1")
    p.add_argument("--macs", type=amount, metavar="M", help="limit on multiply-accumulates at batch 1, e.g. 5e6 or 5M")
    p.add_argument("--params", type=amount, metavar="P", help="limit on parameters, e.g. 100k")
    p.add_argument("--strategy", choices=("evolution", "random", "rl"), default="evolution",
                   help="regularized evolution (default), random search (the control at equal budget) or rl "
                        "(an LSTM controller trained with REINFORCE, ENAS settings)")
    p.add_argument("--budget", type=int, default=200, help="subnets to evaluate, default 200")
    p.add_argument("--population", type=int, default=20, help="evolution's population, default 20")
    p.add_argument("--seed", type=int, default=0, help="seed of the search, default 0")
    p.add_argument("--calibration-size", type=int, default=2000,
                   help="training images for each subnet's BN recalibration, default 2000")
    p.add_argument("--data", metavar="NAME", help="data set; default the one the supernet was trained on")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--subset", type=int, metavar="N",
                   help="use only N images of the training pool (validation carved from them); default: the "
                        "supernet's own --subset")
    p.add_argument("--out", required=True, type=Path, help="folder for the chosen subnet")
    p.add_argument("--overwrite", action="store_true", help="replace a model already in --out")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run)


def _format_table(rows: list[dict], batch: int | None) -> str:
    head = ["", "arch", "val acc %", "MACs", "params", f"pred. ms (b{batch})" if batch else "pred. ms"]
    lines = [head]
    for i, r in enumerate(rows):
        lat = r.get("latency_ms")
        lines.append(["*" if i == 0 else str(i + 1), _short(r["arch"]), f"{r['accuracy']:.2f}",
                      f"{r['macs'] / 1e6:.2f}M", f"{r['params'] / 1e3:.1f}k", "-" if lat is None else f"{lat:.3f}"])
    widths = [max(len(line[c]) for line in lines) for c in range(len(head))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(line, widths)).rstrip() for line in lines)


def _short(arch: dict) -> str:
    from ..nas.space import Arch

    return str(Arch.from_dict(arch))


def run(args) -> int:
    from ..export import load, save
    from ..nas import Constraints, Evaluator, search
    from ..nas.latency_table import LatencyTable
    from .nas import LATENCY, SUPERNET, require_supernet_folder

    refuse_unless(args, "batch", args.latency_ms is not None, "--latency-ms",
                  "the batch size only says which latency --latency-ms limits")
    if args.latency_ms is None and args.macs is None and args.params is None:
        raise DeepslimError("nas search needs a limit", hint="give --latency-ms, --macs and/or --params")
    for name in ("latency_ms", "macs", "params"):
        value = getattr(args, name)
        if value is not None and not value > 0:
            raise DeepslimError(f"--{name.replace('_', '-')} {value:g} must be positive")
    if args.budget < 1:
        raise DeepslimError(f"--budget {args.budget} must be >= 1", hint="e.g. --budget 200")
    if args.population < 2:
        raise DeepslimError(f"--population {args.population} must be >= 2", hint="e.g. --population 20")
    if args.calibration_size < 1:
        raise DeepslimError(f"--calibration-size {args.calibration_size} must be >= 1", hint="e.g. 2000")
    manifest = require_supernet_folder(args.dir, "search")
    if not isinstance(manifest["space_obj"], MBConvSpace):
        raise DeepslimError(f"{args.dir} holds an ENAS search ({manifest['space_obj'].name}); `nas search` searches "
                            "once-for-all supernets", hint=f"its derived arch is in {args.dir / 'child'}")
    batch = args.batch if args.batch is not None else 1
    table = None
    if (args.dir / LATENCY).is_file() or args.latency_ms is not None:
        if not (args.dir / LATENCY).is_file():
            raise DeepslimError(f"--latency-ms needs a latency table, and {args.dir} has no {LATENCY}",
                                hint=f"build it first with `deepslim nas latency-table {args.dir}`")
        table = LatencyTable.load(args.dir / LATENCY, manifest["space_obj"])
        table.predict(manifest["space_obj"].smallest(), batch)  # refuses a batch size the table lacks, now
    check_output_dir(args.out, None, args.overwrite)
    net = load(args.dir / SUPERNET)
    if net.space.to_dict() != manifest["space_obj"].to_dict():
        raise DeepslimError(f"{args.dir / SUPERNET} is a supernet of another space than {args.dir / 'nas.json'} says",
                            hint="train the supernet again in a new folder")
    trained_on = manifest.get("data", {})
    data_name = args.data or trained_on.get("name")
    subset = args.subset if args.subset is not None else (trained_on.get("subset") if not args.data else None)
    data = load_dataset(data_name, subset=subset, seed=trained_on.get("seed", 0), **data_options(args))
    calibration = min(args.calibration_size, len(data.train))
    judge = Evaluator(net, data.train, data.val, calibration_size=calibration, seed=args.seed,
                      latency=table.latency_fn(batch) if table is not None else None)
    constraints = Constraints(max_macs=args.macs, max_params=args.params, max_latency_ms=args.latency_ms)
    options = {"seed": args.seed}
    if args.strategy == "evolution":
        options.update(population=args.population, sample_size=min(5, args.population))
    log(f"{args.strategy} search, budget {args.budget}, {constraints.describe()}; each subnet BN-recalibrated on "
        f"{calibration:,} training images, judged on {len(data.val):,} validation images")
    result = search(args.strategy, net.space, judge, args.budget, constraints, **options)
    model = judge.subnet(result.best_arch)
    from ..train import evaluate

    test = evaluate(model, data.test, desc="test")
    summary = {"strategy": result.strategy, "constraints": result.constraints,
               "latency_batch": batch if table else None,
               "budget": args.budget, "seed": args.seed, "feasible": result.feasible, "message": result.message,
               "best": result.best, "test_accuracy": test["accuracy"], "calibration_images": calibration,
               "data": data_record(data, subset), "supernet": str(args.dir), "command": command_line(args)}
    meta = dict(model.deepslim_metadata)
    meta["nas"] = {**meta["nas"], "search": summary}
    meta.update({"model": "ofa-subnet", "dataset": data.describe(), "input_shape": [1, *data.input_shape],
                 "metrics": {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "test_images": test["n"]}})

    def build(work: Path) -> None:
        save(model, work, metadata=meta, overwrite=True)
        write_model_card(work)
        (work / "search.json").write_text(json.dumps({**result.to_dict(), **summary}, indent=1))

    replace_output_dir(args.out, build)
    if args.json:
        print_json({"out": str(args.out), **summary})
        return 0
    ranked = sorted(result.history, key=lambda r: (r["violation"] == 0, -r["violation"], r["accuracy"]), reverse=True)
    rows = [result.best] + [r for r in ranked if r["arch"] != result.best["arch"]][:4]
    print(_format_table(rows, batch if table else None))
    print(("" if result.feasible else "warning: ") + result.message)
    print(f"test accuracy {test['accuracy']:.2f}% on {test['n']:,} images; saved to {args.out}")
    return 0
