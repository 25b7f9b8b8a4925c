"""Once-for-all on Fashion-MNIST: what one progressively-shrunk supernet (`deepslim nas supernet`) gives
without retraining, in stages that each write their own JSON (so a killed run keeps finished stages, and
two stages can run at once on the two cores, one thread each):

    DIR=runs/ofa; R=benchmarks/results
    deepslim nas latency-table $DIR --threads 1                               # the predictor, on this machine
    OMP_NUM_THREADS=1 python benchmarks/ofa.py search  $DIR --json $R/ofa_search.json    # evolution, random, rl
    OMP_NUM_THREADS=1 python benchmarks/ofa.py alone   $DIR --json $R/ofa_alone.json     # 10 archs trained alone
    OMP_NUM_THREADS=1 python benchmarks/ofa.py pareto  $DIR --json $R/ofa_pareto.json    # subnets to report
    OMP_NUM_THREADS=1 python benchmarks/ofa.py ranking $DIR --json $R/ofa_ranking.json   # supernet vs alone, tau
    OMP_NUM_THREADS=1 python benchmarks/ofa.py predictor $DIR --json $R/ofa_predictor.json  # on all judged archs
    OMP_NUM_THREADS=1 python benchmarks/ofa.py finetune $DIR --shard 0/2 --json $R/ofa_finetune_0.json
    OMP_NUM_THREADS=1 python benchmarks/ofa.py finetune $DIR --shard 1/2 --json $R/ofa_finetune_1.json
    OMP_NUM_THREADS=1 python benchmarks/ofa.py timing  $DIR --json $R/ofa_timing.json    # alone on the machine
    OMP_NUM_THREADS=1 python benchmarks/ofa.py goal    $DIR --json $R/ofa_goal.json      # int8 vs the demo
    python benchmarks/ofa_report.py                                            # tables, chart, hypervolume

Every subnet is judged after BN recalibration on 2,000 training images. Searches rank on the first
--val-images validation images; reported accuracies are on the full 10,000-image test split.
Latency: ONNX Runtime, 1 thread, median of 3 interleaved sweeps (a shared 2-core machine times 1 thread
steadily, see docs/nas.md), measured on the whole exported subnet, not predicted.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import deepslim
from deepslim.data.splits import TensorData
from deepslim.export.files import write_json_atomic
from deepslim.export.onnx import evaluate_onnx
from deepslim.nas import (
    AccuracyPredictor,
    Constraints,
    Evaluator,
    LatencyTable,
    evolution_search,
    random_search,
    rl_search,
)
from deepslim.nas.onnx_timing import time_parts
from deepslim.profiling import count_ops

sys.path.insert(0, str(Path(__file__).parent))
from common import environment  # noqa: E402  (with the date)
from ofa_scratch import UNIFORM_ARCHS, uniform_arch  # noqa: E402

THREADS = 1
ROUNDS = 3
CALIBRATION = 2000
FINETUNE = dict(epochs=1, batch_size=128, lr=0.01, momentum=0.9, nesterov=True, weight_decay=3e-5,
                schedule="cosine", augment=True, crop_padding=2, flip=True, seed=0)
ZOO = ("fmnist-resnet", "fmnist-cnn", "fmnist-squeezenet")


# --- shared set-up ------------------------------------------------------------------------------------------
class Setup:
    """The trained supernet of DIR, its data split and latency table, and an evaluator ranking on validation."""

    def __init__(self, folder: Path, val_images: int):
        self.folder = folder
        manifest = json.loads((folder / "nas.json").read_text())
        self.net = deepslim.load(folder / "supernet").eval()
        self.space = self.net.space
        d = manifest["data"]
        self.data = deepslim.load_dataset(d["name"], subset=d.get("subset"), seed=d.get("seed", 0))
        self.table = LatencyTable.load(folder / "latency.json", self.space)
        val = self.data.val
        self.val = TensorData(val.images[:val_images], val.labels[:val_images])
        self.judge = Evaluator(self.net, self.data.train, self.val, calibration_size=CALIBRATION,
                               latency=self.table.latency_fn(1))

    def test_accuracy(self, model) -> float:
        fast = copy.deepcopy(model).to(memory_format=torch.channels_last)  # as the Evaluator runs (3x faster)
        return float(deepslim.evaluate(fast, self.data.test, batch_size=128, desc="test")["accuracy"])


def _shape(space) -> tuple:
    return (space.in_channels, 28, 28)


def _record(stage: str, args, extra: dict) -> dict:
    return {"stage": stage, "command": " ".join(["OMP_NUM_THREADS=1 python benchmarks/ofa.py", *sys.argv[1:]]),
            "environment": environment(), "threads": THREADS, **extra}


def _short(arch: dict) -> str:
    k = "".join(str(x) for s in arch["kernels"] for x in s)
    e = "".join(str(x) for s in arch["expands"] for x in s)
    return f"d{''.join(map(str, arch['depths']))}-k{k}-e{e}"


# --- search: evolution vs random at equal budget ---------------------------------------------------------------
def run_search(args) -> dict:
    s = Setup(args.dir, args.val_images)
    constraints = Constraints(max_latency_ms=args.latency_ms)
    runs = []
    for seed in args.seeds:
        for strategy in args.strategies:
            started, computed = time.perf_counter(), s.judge.evaluations
            if strategy == "evolution":
                r = evolution_search(s.space, s.judge, args.budget, constraints, population=args.population,
                                     sample_size=args.sample_size, seed=seed)
            elif strategy == "rl":
                r = rl_search(s.space, s.judge, args.budget, constraints, seed=seed)
            else:
                r = random_search(s.space, s.judge, args.budget, constraints, seed=seed)
            best_so_far, best = [], float("-inf")
            for h in r.history:
                if h["violation"] == 0:
                    best = max(best, h["accuracy"])
                best_so_far.append(None if best == float("-inf") else best)
            test = s.test_accuracy(s.judge.subnet(r.best_arch))
            runs.append({"strategy": strategy, "seed": seed, "feasible": r.feasible, "best": r.best,
                         "val_accuracy": r.best["accuracy"], "test_accuracy": test, "best_so_far": best_so_far,
                         "seconds": round(time.perf_counter() - started, 1),
                         "computed": s.judge.evaluations - computed, **r.extras})  # the rest came from the cache
            print(f"{strategy} seed {seed}: val {r.best['accuracy']:.2f}% test {test:.2f}% "
                  f"{r.best['latency_ms']:.4f} ms ({runs[-1]['seconds']:.0f} s)")
    summary = {}
    for strategy in args.strategies:
        mine = [r for r in runs if r["strategy"] == strategy]
        summary[strategy] = {f"{k}_{stat}": round(fn([r[k] for r in mine]), 3)
                             for k in ("val_accuracy", "test_accuracy")
                             for stat, fn in (("mean", statistics.mean), ("std", _stdev))}
    return _record("search", args, {"latency_ms": args.latency_ms, "budget": args.budget, "seeds": args.seeds,
                                    "strategies": args.strategies,
                                    "population": args.population, "sample_size": args.sample_size,
                                    "val_images": len(s.val), "evaluations_computed": s.judge.evaluations,
                                    "runs": runs, "summary": summary, "evaluated": _evaluated(s)})


def _stdev(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def _evaluated(s: Setup) -> list[dict]:
    """Every arch the evaluator judged (validation accuracy after BN recalibration): the predictor's data."""
    return [e.to_dict() for e in s.judge.cache.values()]


# --- pareto: the subnets to report ---------------------------------------------------------------------
def _targets(s: Setup, n: int) -> list[float]:
    low, high = s.table.predict(s.space.smallest(), 1), s.table.predict(s.space.largest(), 1)
    return [float(x) for x in np.geomspace(low * 1.15, high * 0.95, n)]


def run_pareto(args) -> dict:
    s = Setup(args.dir, args.val_images)
    picks: dict[str, dict] = {}

    def add(name: str, arch, how: str) -> None:
        key = s.space.validate(arch).key()
        if all(p["key"] != key for p in picks.values()):
            picks[name] = {"key": key, "arch": s.space.validate(arch).to_dict(), "chosen_by": how}

    for name, (d, k, e) in UNIFORM_ARCHS.items():  # d2-k3-e3 is also the space's smallest
        add(name, uniform_arch(s.space, d, k, e), "fixed before training (from-scratch control)")
    add("smallest", s.space.smallest(), "the space's smallest")
    for target in _targets(s, args.targets):
        r = evolution_search(s.space, s.judge, args.budget, Constraints(max_latency_ms=target),
                             population=args.population, sample_size=args.sample_size, seed=0)
        add(f"evo-{target:.3f}ms", r.best_arch, f"evolution, predicted b1 latency <= {target:.4f} ms")
        print(f"target {target:.4f} ms: val {r.best['accuracy']:.2f}% ({_short(r.best['arch'])})")
    add("largest", s.space.largest(), "the space's largest")
    work = args.work / "subnets"
    rows = []
    for name, p in picks.items():
        model = s.judge.subnet(p["arch"])
        counts = count_ops(model, s.data.test.images[:1])
        val = s.judge(p["arch"]).accuracy
        test = s.test_accuracy(model)
        deepslim.save(model, work / name, overwrite=True)
        rows.append({"name": name, **p, "short": _short(p["arch"]), "val_accuracy": val, "test_accuracy": test,
                     "macs": int(counts.macs), "params": int(counts.params),
                     "predicted_ms": {b: s.table.predict(p["arch"], b) for b in (1, 64)}})
        print(f"{name}: test {test:.2f}% {counts.macs / 1e6:.2f}M MACs")
    return _record("pareto", args, {"val_images": len(s.val), "budget_per_target": args.budget,
                                    "targets_ms": _targets(s, args.targets), "subnets": rows,
                                    "evaluations_computed": s.judge.evaluations, "evaluated": _evaluated(s)})


def run_timing(args) -> dict:
    """Measured ms at batch 1 and 64 of every reported subnet, the zoo baselines and the demo's int8 model,
    all in the same interleaved sweeps; run with nothing else on the machine."""
    pareto = json.loads(args.pareto.read_text())
    space = deepslim.load(args.dir / "supernet").space
    timed = _time_everything(space, pareto["subnets"], args.demo, args.work / "subnets")
    subnets = {row["name"]: timed.pop(row["name"]) for row in pareto["subnets"]}
    return _record("timing", args, {"subnets_ms": subnets, "peers_ms": timed,
                                    "peer_test_accuracy": {name: deepslim.load_pretrained(name).deepslim_metadata[
                                        "metrics"]["test_accuracy"] for name in ZOO}})


def _time_everything(space, rows: list[dict], demo: Path, work: Path) -> dict:
    shape = _shape(space)
    with tempfile.TemporaryDirectory(prefix="ofa-bench-") as tmp:
        items = []
        for row in rows:
            path = Path(tmp) / f"{row['name']}.onnx"
            deepslim.export_onnx(deepslim.load(work / row["name"]), path, torch.zeros(1, *shape))
            items.append((row["name"], path, shape))
        for name in ZOO:
            path = Path(tmp) / f"{name}.onnx"
            deepslim.export_onnx(deepslim.load_pretrained(name).eval(), path, torch.zeros(1, *shape))
            items.append((name, path, shape))
        if demo.is_file():
            items.append(("demo int8", demo, shape))
        return time_parts(items, (1, 64), THREADS, 0.3, ROUNDS, "time subnets and peers")


# --- ranking: supernet-recalibrated accuracy against the same archs trained alone -----------------------------
RANKING_ARCHS = 10


def _ranking_archs(space) -> list:
    """Uniformly random archs fixed by seed (chosen before the supernet was trained)."""
    return [space.sample(500 + i) for i in range(RANKING_ARCHS)]


def run_alone(args) -> dict:
    """Train each ranking arch of DIR's space alone for --alone-epochs (the from-scratch recipe of
    ofa_scratch.py, shorter) on DIR's data; needs only DIR/nas.json, so it can run while the supernet trains.
    Finished archs are kept in --json and skipped when the stage is rerun."""
    from ofa_scratch import fresh_subnet

    from deepslim.nas import space_from_dict

    manifest = json.loads((args.dir / "nas.json").read_text())  # written when the supernet's training starts
    space, d = space_from_dict(manifest["space"]), manifest["data"]
    data = deepslim.load_dataset(d["name"], subset=d.get("subset"), seed=d.get("seed", 0))
    done = json.loads(args.json.read_text()).get("archs", []) if args.json.is_file() else []
    config = deepslim.TrainConfig(epochs=args.alone_epochs, batch_size=128, lr=0.1, momentum=0.9, nesterov=True,
                                  weight_decay=3e-5, seed=0)
    for i, arch in enumerate(_ranking_archs(space)):
        if i < len(done):
            continue
        model = fresh_subnet(space, arch, i).to(memory_format=torch.channels_last)
        started = time.perf_counter()
        deepslim.train(model, data.train, config)
        model = model.to(memory_format=torch.contiguous_format).eval()
        done.append({"arch": arch.to_dict(), "val_accuracy": float(deepslim.evaluate(model, data.val)["accuracy"]),
                     "test_accuracy": float(deepslim.evaluate(model, data.test)["accuracy"]),
                     "seconds": round(time.perf_counter() - started, 1)})
        print(f"arch {i}: {done[-1]['test_accuracy']:.2f}% test after {args.alone_epochs} epochs alone")
        write_json_atomic(args.json, _record("alone", args, {"epochs": args.alone_epochs, "archs": done}))
    return _record("alone", args, {"epochs": args.alone_epochs, "archs": done})


def run_ranking(args) -> dict:
    """Kendall tau between the supernet's BN-recalibrated accuracy and stand-alone accuracy, on the full
    validation split (and on the test split), over the archs of the ``alone`` stage."""
    from deepslim.nas.latency_quality import kendall_tau

    s = Setup(args.dir, 5000)  # the whole validation split
    alone = json.loads((args.json.parent / "ofa_alone.json").read_text())
    rows = []
    for record in alone["archs"]:
        model = s.judge.subnet(record["arch"])
        fast = copy.deepcopy(model).to(memory_format=torch.channels_last)
        val = float(deepslim.evaluate(fast, s.data.val, batch_size=128)["accuracy"])
        rows.append({**record, "supernet_val_accuracy": val, "supernet_test_accuracy": s.test_accuracy(model)})
    tau = {split: kendall_tau([r[f"supernet_{split}_accuracy"] for r in rows], [r[f"{split}_accuracy"] for r in rows])
           for split in ("val", "test")}
    print(f"Kendall tau over {len(rows)} archs: val {tau['val']:.3f}, test {tau['test']:.3f}")
    return _record("ranking", args, {"alone_epochs": alone["epochs"], "archs": rows, "kendall_tau": tau})


# --- predictor: an MLP from the arch encoding to the recalibrated accuracy ------------------------------------
def run_predictor(args) -> dict:
    s = Setup(args.dir, args.val_images)
    seen: dict[str, dict] = {}
    for name in ("ofa_search.json", "ofa_pareto.json"):
        path = args.json.parent / name
        for record in (json.loads(path.read_text()).get("evaluated", []) if path.is_file() else []):
            seen[json.dumps(record["arch"], sort_keys=True)] = record
    records = list(seen.values())
    order = np.random.default_rng(0).permutation(len(records))
    held = max(len(records) // 5, 2)
    test_set, train_set = [records[i] for i in order[:held]], [records[i] for i in order[held:]]
    started = time.perf_counter()
    predictor = AccuracyPredictor(s.space).fit(train_set)
    fit_seconds = time.perf_counter() - started
    quality = predictor.quality(test_set)
    print(f"predictor on {len(test_set)} held-out archs: MAE {quality['mean_abs_error']:.2f} points, "
          f"tau {quality['kendall_tau']:.3f}")
    started = time.perf_counter()
    judge = predictor.evaluator(lambda a: {"latency_ms": s.table.predict(a, 1)})
    found = evolution_search(s.space, judge, args.predictor_budget, Constraints(max_latency_ms=args.latency_ms),
                             population=50, sample_size=10, seed=0)
    search_seconds = time.perf_counter() - started
    real = s.judge(found.best_arch)
    test = s.test_accuracy(s.judge.subnet(found.best_arch))
    print(f"predictor-guided evolution ({args.predictor_budget} predictions, {search_seconds:.1f} s): predicted "
          f"{found.best['accuracy']:.2f}%, real val {real.accuracy:.2f}%, test {test:.2f}%")
    return _record("predictor", args, {"records": len(records), "train": len(train_set), "held_out": quality,
                                       "fit_seconds": round(fit_seconds, 1), "latency_ms": args.latency_ms,
                                       "search": {"budget": args.predictor_budget, "seconds": round(search_seconds, 2),
                                                  "arch": found.best["arch"], "predicted": found.best["accuracy"],
                                                  "val_accuracy": real.accuracy, "test_accuracy": test,
                                                  "latency_ms": found.best["latency_ms"]}})


# --- finetune: a short stand-alone fine-tune of each reported subnet ------------------------------------------
def run_finetune(args) -> dict:
    pareto = json.loads(args.pareto.read_text())
    index, count = (int(x) for x in args.shard.split("/"))
    manifest = json.loads((args.dir / "nas.json").read_text())["data"]
    data = deepslim.load_dataset(manifest["name"], subset=manifest.get("subset"), seed=manifest.get("seed", 0))
    config = deepslim.TrainConfig(**FINETUNE)
    rows = json.loads(args.json.read_text())["subnets"] if args.json.is_file() else []  # resume: keep those done
    done = {r["name"] for r in rows}
    for i, row in enumerate(pareto["subnets"]):
        if i % count != index or row["name"] in done:
            continue
        model = deepslim.load(args.work / "subnets" / row["name"]).to(memory_format=torch.channels_last)
        started = time.perf_counter()
        deepslim.train(model, data.train, config)
        model = model.to(memory_format=torch.contiguous_format).eval()
        test = float(deepslim.evaluate(model, data.test)["accuracy"])
        val = float(deepslim.evaluate(model, data.val)["accuracy"])
        deepslim.save(model, args.work / "finetuned" / row["name"], overwrite=True)
        rows.append({"name": row["name"], "test_accuracy": test, "val_accuracy": val,
                     "seconds": round(time.perf_counter() - started, 1)})
        print(f"{row['name']}: {row['test_accuracy']:.2f}% -> {test:.2f}% after the fine-tune")
        write_json_atomic(args.json, _record("finetune", args, {"config": FINETUNE, "shard": args.shard,
                                                                "subnets": rows}))
    return _record("finetune", args, {"config": FINETUNE, "shard": args.shard, "subnets": rows})


# --- goal: int8 subnets against the demo's int8 model at its batch-1 latency -----------------------------
def run_goal(args) -> dict:
    pareto = json.loads(args.pareto.read_text())
    manifest = json.loads((args.dir / "nas.json").read_text())["data"]
    data = deepslim.load_dataset(manifest["name"], subset=manifest.get("subset"), seed=manifest.get("seed", 0))
    shape = tuple(data.input_shape)
    rows = []
    with tempfile.TemporaryDirectory(prefix="ofa-goal-") as tmp:
        items = [("demo int8", args.demo, shape)]
        for row in pareto["subnets"]:
            folder = args.work / "finetuned" / row["name"]
            if not folder.is_dir():
                continue
            model = deepslim.load(folder).eval()
            path = Path(tmp) / f"{row['name']}.onnx"
            deepslim.export_int8(model, data.train, path)
            ort = evaluate_onnx(path, data.test, threads=THREADS)
            val = evaluate_onnx(path, data.val, threads=THREADS)
            rows.append({"name": row["name"], "int8_test_accuracy": float(ort["accuracy"]),
                         "int8_val_accuracy": float(val["accuracy"]), "onnx_bytes": path.stat().st_size})
            items.append((row["name"], path, shape))
            print(f"{row['name']}: int8 test {ort['accuracy']:.2f}%")
        timed = time_parts(items, (1, 64), THREADS, 0.3, ROUNDS, "time int8 subnets and the demo")
    demo_ms = timed.pop("demo int8")
    demo_accuracy = float(json.loads((args.demo.parent / "metrics.json").read_text())["final"]["accuracy"]) \
        if (args.demo.parent / "metrics.json").is_file() else None
    for row in rows:
        row["int8_ms"] = timed[row["name"]]
    within = [r for r in rows if r["int8_ms"][1] <= demo_ms[1]]
    chosen = max(within, key=lambda r: r["int8_val_accuracy"]) if within else None
    return _record("goal", args, {"demo": str(args.demo), "demo_ms": demo_ms, "demo_test_accuracy": demo_accuracy,
                                  "subnets": rows, "chosen": chosen,
                                  "note": "chosen: the int8 subnet with the best validation accuracy among those "
                                          "at most as slow as the demo's int8 model at batch 1"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("search", "pareto", "timing", "alone", "ranking", "predictor", "finetune",
                                          "goal"))
    parser.add_argument("dir", type=Path, help="the `deepslim nas supernet` folder, with latency.json")
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--work", type=Path, default=Path("runs/ofa-bench"))
    parser.add_argument("--val-images", type=int, default=2500)
    parser.add_argument("--latency-ms", type=float, default=0.1, help="search stage: the batch-1 limit")
    parser.add_argument("--budget", type=int, default=50)
    parser.add_argument("--population", type=int, default=10)
    parser.add_argument("--sample-size", type=int, default=3)
    parser.add_argument("--seeds", type=lambda t: [int(x) for x in t.split(",")], default=[0, 1, 2])
    parser.add_argument("--strategies", type=lambda t: t.split(","), default=["evolution", "random", "rl"],
                        help="search stage: strategies compared at equal budget (rl: ENAS controller settings)")
    parser.add_argument("--targets", type=int, default=6, help="pareto stage: latency targets searched")
    parser.add_argument("--predictor-budget", type=int, default=2000,
                        help="predictor stage: archs the predictor-guided evolution judges")
    parser.add_argument("--shard", default="0/1", help="finetune stage: I/N, this process's share")
    parser.add_argument("--alone-epochs", type=int, default=4, help="alone stage: epochs each ranking arch trains")
    parser.add_argument("--pareto", type=Path, default=Path("benchmarks/results/ofa_pareto.json"))
    parser.add_argument("--demo", type=Path, default=Path("runs/demo/model.onnx"),
                        help="the demo's int8 ONNX model (make demo)")
    args = parser.parse_args()
    started = time.perf_counter()
    stages = {"search": run_search, "pareto": run_pareto, "timing": run_timing, "alone": run_alone,
              "ranking": run_ranking, "predictor": run_predictor, "finetune": run_finetune, "goal": run_goal}
    result = stages[args.stage](args)
    result["seconds"] = round(time.perf_counter() - started, 1)
    write_json_atomic(args.json, result)
    print(f"wrote {args.json} ({result['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
