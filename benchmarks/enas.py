"""ENAS on Fashion-MNIST against its controls (issue 18), in stages that each write their own JSON (a killed
run keeps finished stages; two processes, one thread each, share the 2 cores):

    R=benchmarks/results
    OMP_NUM_THREADS=1 python benchmarks/enas.py search  --strategy rl --seed 0     # -> $R/enas/search_rl_0.json
    OMP_NUM_THREADS=1 python benchmarks/enas.py scratch --strategy rl --seed 0     # its derived arch from scratch
    OMP_NUM_THREADS=1 python benchmarks/enas.py ranking                            # shared vs stand-alone, 10 archs
    OMP_NUM_THREADS=1 python benchmarks/enas.py zoo --model resnet8 --seed 0       # a zoo model, same recipe
    python benchmarks/enas.py latency                                              # ORT batch 1, idle machine
    python benchmarks/enas.py report                                               # tables and curves

`search` runs `deepslim nas enas` (resumable) for one strategy and seed; every strategy gets the same
number of child evaluations (shared-weight accuracy on a 128-image validation minibatch). `scratch`
trains the derived arch alone from random weights for --scratch-epochs and tests it on the full test
split. `ranking` takes --archs archs sampled uniformly, scores each with the rl seed-0 supernet's shared
weights (BN re-estimated on 2,000 training images, full validation split) and trains each alone for
--ranking-epochs, then reports Kendall tau between the two.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

import deepslim
from deepslim.core.text import plural
from deepslim.export.files import write_json_atomic
from deepslim.nas import EnasSupernet, extract_child, get_space
from deepslim.nas.latency_quality import kendall_tau
from deepslim.profiling import count_ops
from deepslim.profiling.environment import environment
from deepslim.train import TrainConfig, recalibrate_batchnorm_, train

STRATEGIES = ("rl", "random", "evolution")


def _record(args, extra: dict) -> dict:
    return {"command": " ".join(["OMP_NUM_THREADS=1 python benchmarks/enas.py", *sys.argv[1:]]),
            "environment": environment(), "threads": torch.get_num_threads(), **extra}


def _data(args):
    return deepslim.load_dataset("fashion-mnist", subset=args.subset, seed=0)


def _fresh_child(arch: dict, seed: int):
    """The arch as a new model with PyTorch's default initialisation, as any model trained from scratch."""
    torch.manual_seed(seed)
    return extract_child(EnasSupernet(), arch)  # a fresh supernet's weights are default-initialised


def _train_alone(model, data, epochs: int, seed: int) -> tuple[float, float, float]:
    """Train ``model`` alone (SGD lr 0.05 cosine, as ENAS's children), return (test %, val %, seconds)."""
    config = TrainConfig(epochs=epochs, batch_size=128, lr=0.05, weight_decay=2.5e-4, seed=seed)
    model = model.to(memory_format=torch.channels_last)
    started = time.perf_counter()
    train(model, data.train, config)
    seconds = time.perf_counter() - started
    model = model.to(memory_format=torch.contiguous_format).eval()
    return (float(deepslim.evaluate(model, data.test)["accuracy"]), float(deepslim.evaluate(model, data.val)["accuracy"]),
            seconds)


def run_search(args) -> dict:
    from deepslim.cli import main as cli

    out = args.work / f"{args.strategy}-{args.seed}"
    argv = ["nas", "enas", "--space", "enas-macro", "--data", "fashion-mnist", "--epochs", str(args.epochs),
            "--strategy", args.strategy, "--seed", str(args.seed), "--out", str(out), "--quiet"]
    if args.subset:
        argv += ["--subset", str(args.subset)]
    if args.macs:
        argv += ["--macs", args.macs]
    if (out / "nas.json").is_file() and not (out / "search.json").is_file():
        argv.append("--resume")
    started = time.perf_counter()
    if not (out / "search.json").is_file() and cli(argv) != 0:
        raise SystemExit(f"nas enas failed for {args.strategy} seed {args.seed}")
    result = json.loads((out / "search.json").read_text())
    return _record(args, {"strategy": args.strategy, "seed": args.seed, "epochs": args.epochs,
                          "wall_seconds_this_run": round(time.perf_counter() - started, 1),
                          "search_seconds": result["search_seconds"], "evaluations": result["evaluations"],
                          "arch": result["arch"], "reward_accuracy": result["reward_accuracy"],
                          "val_accuracy_shared_weights": result["val_accuracy_shared_weights"],
                          "history": result["history"], "controller": result["controller"]})


def run_scratch(args) -> dict:
    search = json.loads((args.results / f"search_{args.strategy}_{args.seed}.json").read_text())
    data = _data(args)
    model = _fresh_child(search["arch"], args.seed)
    counts = count_ops(model.eval(), data.test.images[:1])
    test, val, seconds = _train_alone(model.train(), data, args.scratch_epochs, args.seed)
    print(f"{args.strategy} seed {args.seed}: {test:.2f}% test after {args.scratch_epochs} epochs alone")
    return _record(args, {"strategy": args.strategy, "seed": args.seed, "arch": search["arch"],
                          "epochs": args.scratch_epochs, "test_accuracy": test, "val_accuracy": val,
                          "train_seconds": round(seconds, 1), "macs": int(counts.macs), "params": int(counts.params)})


def run_zoo(args) -> dict:
    """A zoo model of similar size trained with the derived archs' recipe and epochs, for the table."""
    data = _data(args)
    torch.manual_seed(args.seed)
    model = deepslim.create_model(args.model, num_classes=10)
    counts = count_ops(model.eval(), data.test.images[:1])
    test, val, seconds = _train_alone(model.train(), data, args.scratch_epochs, args.seed)
    print(f"{args.model} seed {args.seed}: {test:.2f}% test after {args.scratch_epochs} epochs")
    return _record(args, {"model": args.model, "seed": args.seed, "epochs": args.scratch_epochs, "test_accuracy": test,
                          "val_accuracy": val, "train_seconds": round(seconds, 1), "macs": int(counts.macs),
                          "params": int(counts.params)})


def run_latency(args) -> dict:
    """ONNX Runtime batch-1 latency (one thread, on an otherwise idle machine) of every derived arch and zoo model."""
    from deepslim.profiling import measure_latency

    rows = []
    example = torch.zeros(1, 1, 28, 28)
    models = [(p.stem, _fresh_child(json.loads(p.read_text())["arch"], 0)) for p in sorted(args.results.glob("scratch_*.json"))]
    # latency depends on the network, not its weights: the zoo models need not be trained yet
    models += [(f"zoo_{name}_0", deepslim.create_model(name, num_classes=10)) for name in args.zoo_models.split(",")]
    for name, model in models:
        (m,) = measure_latency(model.eval(), example, batch_sizes=(1,), runtimes=("onnxruntime",), threads=1)
        rows.append({"name": name, "latency_ms": m.median_ms})
        print(f"{name}: {m.median_ms:.3f} ms")
    return _record(args, {"rows": rows})


def run_ranking(args) -> dict:
    data = _data(args)
    net = deepslim.load(args.work / "rl-0" / "supernet").eval()
    space = get_space("enas-macro")
    rows = []
    for i in range(args.archs):
        arch = space.sample(1000 + i)
        child = extract_child(net, arch)
        recalibrate_batchnorm_(child, data.train.images[:2000])
        shared = float(deepslim.evaluate(child.eval(), data.val)["accuracy"])
        test, val, seconds = _train_alone(_fresh_child(arch.to_dict(), 0).train(), data, args.ranking_epochs, 0)
        rows.append({"arch": arch.to_dict(), "shared_val_accuracy": shared, "alone_val_accuracy": val,
                     "alone_test_accuracy": test, "alone_seconds": round(seconds, 1)})
        print(f"arch {i}: shared {shared:.2f}% vs alone {val:.2f}% (val)")
    tau = kendall_tau([r["shared_val_accuracy"] for r in rows], [r["alone_val_accuracy"] for r in rows])
    return _record(args, {"archs": rows, "epochs_alone": args.ranking_epochs, "kendall_tau": tau})


def run_report(args) -> dict:
    searches = [json.loads(p.read_text()) for p in sorted(args.results.glob("search_*.json"))]
    scratch = {(r["strategy"], r["seed"]): r for r in
               (json.loads(p.read_text()) for p in sorted(args.results.glob("scratch_*.json")))}
    lines = ["| strategy | seeds | derived test % (mean ± std, trained alone) | search CPU-hours (mean) | "
             "child evaluations | shared-weight val % |", "|---|---|---|---|---|---|"]
    summary = {}
    for strategy in STRATEGIES:
        mine = [s for s in searches if s["strategy"] == strategy]
        tests = [scratch[(strategy, s["seed"])]["test_accuracy"] for s in mine if (strategy, s["seed"]) in scratch]
        if not mine:
            continue
        hours = statistics.mean(s["search_seconds"] * s["threads"] / 3600 for s in mine)
        shared = statistics.mean(s["val_accuracy_shared_weights"] for s in mine)
        std = statistics.stdev(tests) if len(tests) > 1 else 0.0
        lines.append(f"| {strategy} | {len(mine)} | " + (f"{statistics.mean(tests):.2f} ± {std:.2f}" if tests else "")
                     + f" | {hours:.3f} | {mine[0]['evaluations']} | {shared:.2f} |")
        summary[strategy] = {"tests": tests, "cpu_hours": hours}
    lines += _size_table(args, scratch)
    ranking = args.results / "ranking.json"
    if ranking.is_file():
        r = json.loads(ranking.read_text())
        lines.append(f"\nKendall tau, shared-weight vs stand-alone validation accuracy over {len(r['archs'])} archs "
                     f"({r['epochs_alone']} epochs alone each): {r['kendall_tau']:.3f}.")
        alone = statistics.mean(a["alone_seconds"] for a in r["archs"]) / r["epochs_alone"]
        rl = [s for s in searches if s["strategy"] == "rl"]
        if rl and scratch:  # ENAS's claim: the search costs a fraction of training each child it judged alone
            per_child = alone * max(sc["epochs"] for sc in scratch.values())
            evaluations = statistics.mean(s["evaluations"] for s in rl)
            search_seconds = statistics.mean(s["search_seconds"] for s in rl)
            ratio = evaluations * per_child / search_seconds
            lines.append(f"Training each of the {evaluations:.0f} children an rl search judged alone (as many epochs "
                         f"as the derived archs) would take about {evaluations * per_child / 3600:.1f} CPU-hours, "
                         f"against {search_seconds / 3600:.2f} for the search (mean of {len(rl)} seeds): {ratio:.0f}x.")
            summary["compute_ratio"] = ratio
    _curves(searches, args.chart)
    text = "\n".join(lines) + "\n"
    (args.results / "enas.md").write_text(text)
    print(text)
    return _record(args, {"summary": summary})


def _size_table(args, scratch: dict) -> list[str]:
    """Every derived arch beside the zoo models trained the same way: accuracy, MACs, params, ORT b1 latency."""
    zoo: dict[str, list[dict]] = {}
    for path in sorted(args.results.glob("zoo_*.json")):
        r = json.loads(path.read_text())
        zoo.setdefault(r["model"], []).append(r)
    latency_file = args.results / "latency.json"
    latency = ({r["name"]: r["latency_ms"] for r in json.loads(latency_file.read_text())["rows"]}
               if latency_file.is_file() else {})
    lines = ["", f"| model | test % ({next(iter(scratch.values()))['epochs'] if scratch else '?'} epochs alone) | "
             "MACs | params | ORT batch-1 ms (1 thread) |", "|---|---|---:|---:|---:|"]
    for (strategy, seed), r in sorted(scratch.items()):
        ms = latency.get(f"scratch_{strategy}_{seed}")
        lines.append(f"| {strategy} seed {seed}: {' '.join(r['arch']['ops'])} | {r['test_accuracy']:.2f} | "
                     f"{r['macs'] / 1e6:.2f}M | {r['params'] / 1e3:.1f}k | " + (f"{ms:.3f}" if ms else "") + " |")
    for name, runs in sorted(zoo.items()):
        tests = [r["test_accuracy"] for r in runs]
        std = statistics.stdev(tests) if len(tests) > 1 else 0.0
        ms = latency.get(f"zoo_{name}_0")
        score = f"{statistics.mean(tests):.2f} ± {std:.2f}" if len(tests) > 1 else f"{tests[0]:.2f}"
        lines.append(f"| zoo {name} ({plural(len(runs), 'seed')}) | {score} | "
                     f"{runs[0]['macs'] / 1e6:.2f}M | {runs[0]['params'] / 1e3:.1f}k | " + (f"{ms:.3f}" if ms else "") + " |")
    return lines


def _curves(searches, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [s for s in searches if s["strategy"] == "rl" and s["controller"]]
    if not runs:
        return
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for s in runs:
        reward = [c["reward"] for c in s["controller"]]
        smooth = [statistics.mean(reward[max(0, i - 49):i + 1]) for i in range(len(reward))]
        left.plot(smooth, label=f"seed {s['seed']}")
        right.plot([c["entropy"] for c in s["controller"]], label=f"seed {s['seed']}")
    left.set(title="controller reward (moving mean of 50)", xlabel="controller sample", ylabel="reward")
    right.set(title="controller entropy", xlabel="controller sample", ylabel="entropy (nats)")
    left.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=("search", "scratch", "zoo", "ranking", "latency", "report"))
    parser.add_argument("--strategy", choices=STRATEGIES, default="rl")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--model", default="lenet5", help="zoo: the zoo model to train beside the derived archs")
    parser.add_argument("--zoo-models", default="lenet5,resnet8", help="latency: the zoo models timed beside them")
    parser.add_argument("--epochs", type=int, default=10, help="search: shared-weight epochs")
    parser.add_argument("--scratch-epochs", type=int, default=20, help="scratch: epochs of the derived arch alone")
    parser.add_argument("--archs", type=int, default=10, help="ranking: archs compared")
    parser.add_argument("--ranking-epochs", type=int, default=5, help="ranking: epochs each arch trains alone")
    parser.add_argument("--subset", type=int, help="smoke runs: training images")
    parser.add_argument("--macs", help="search: a MACs limit for the hardware-aware reward (e.g. 4M); give its own "
                                       "--results and --work")
    parser.add_argument("--results", type=Path, default=Path("benchmarks/results/enas"))
    parser.add_argument("--work", type=Path, default=Path("runs/enas-bench"))
    parser.add_argument("--chart", type=Path, default=Path("docs/enas-controller.png"))
    args = parser.parse_args()
    name = {"search": f"search_{args.strategy}_{args.seed}", "scratch": f"scratch_{args.strategy}_{args.seed}",
            "zoo": f"zoo_{args.model}_{args.seed}", "ranking": "ranking", "latency": "latency",
            "report": "report"}[args.stage]
    stages = {"search": run_search, "scratch": run_scratch, "zoo": run_zoo, "ranking": run_ranking,
              "latency": run_latency, "report": run_report}
    result = stages[args.stage](args)
    write_json_atomic(args.results / f"{name}.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
