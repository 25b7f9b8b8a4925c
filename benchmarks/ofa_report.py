"""Tables, Pareto chart, hypervolume and ranking quality from the stages of benchmarks/ofa.py and
benchmarks/ofa_scratch.py (reads benchmarks/results/ofa_*.json; writes benchmarks/results/ofa.md,
benchmarks/results/ofa_summary.json and docs/ofa-pareto.png).

    python benchmarks/ofa_report.py --latency runs/ofa/latency.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from common import markdown_table
from ofa import _short

from deepslim.export.files import write_atomic, write_json_atomic
from deepslim.nas import hypervolume, pareto_front
from deepslim.nas.latency_quality import kendall_tau

RESULTS = Path("benchmarks/results")


def _load(folder: Path, name: str) -> dict | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def _ms(row: dict, batch: int) -> float:
    return float(row[str(batch)] if str(batch) in row else row[batch])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=Path, default=Path("runs/ofa/latency.json"))
    parser.add_argument("--chart", type=Path, default=Path("docs/ofa-pareto.png"))
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the stages' JSON files")
    args = parser.parse_args()
    pareto = _load(args.results, "ofa_pareto.json")
    finetuned = {r["name"]: r for i in range(8) for r in (_load(args.results, f"ofa_finetune_{i}.json") or {}).get("subnets", [])}
    scratch = (_load(args.results, "ofa_scratch.json") or {}).get("archs", {})
    goal = _load(args.results, "ofa_goal.json")
    search = _load(args.results, "ofa_search.json")
    out, summary = [], {}

    timing = _load(args.results, "ofa_timing.json")
    rows = pareto["subnets"]
    for r in rows:
        r["measured_ms"] = timing["subnets_ms"][r["name"]]
        r["ms1"], r["ms64"] = _ms(r["measured_ms"], 1), _ms(r["measured_ms"], 64)
        r["ft"] = finetuned.get(r["name"], {}).get("test_accuracy")
    rows.sort(key=lambda r: r["ms1"])
    front = {r["name"] for r in pareto_front(rows, cost="ms1", accuracy="test_accuracy")}
    env = timing["environment"]
    out.append(f"Date {env.get('date')}; {env.get('cpu')}, {env.get('cores')} cores; every stage one thread "
               f"(`OMP_NUM_THREADS=1`); torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}. "
               "Command: `bash benchmarks/ofa_all.sh runs/ofa` after `deepslim nas supernet --space ofa-mbconv "
               "--data fashion-mnist --out runs/ofa`, `python benchmarks/ofa_scratch.py` and "
               "`python benchmarks/ofa.py alone runs/ofa`.\n")
    meta_path = args.latency.parent / "supernet" / "metadata.json"
    if meta_path.is_file():  # how the supernet was trained
        nas = json.loads(meta_path.read_text())["nas"]
        history = nas["history"]
        per_phase = {}
        for h in history:
            n, sec = per_phase.get(h["phase"], (0, 0.0))
            per_phase[h["phase"]] = (n + 1, sec + h["seconds"])
        total = sum(sec for _, sec in per_phase.values())
        out.append("### The supernet\n\nProgressive shrinking, " + ", ".join(
            f"{phase} {n} epochs ({sec / 60:.0f} min)" for phase, (n, sec) in per_phase.items())
            + f": {total / 3600:.2f} hours on one thread of the 2-core machine (the other core ran other "
            f"stages of this benchmark){' (resumed once)' if nas.get('resumed') else ''}. Validation accuracy after "
            f"BN recalibration: largest subnet {nas['val_accuracy_after_recalibration']['largest']:.2f}%, smallest "
            f"{nas['val_accuracy_after_recalibration']['smallest']:.2f}%.\n")
        summary["supernet"] = {"hours": round(total / 3600, 2), "per_phase": per_phase}
    out.append("### Subnets of one supernet, no retraining\n")
    out.append(markdown_table(
        ["subnet", "chosen by", "MACs", "params", "ORT b1 ms", "ORT b64 ms", "predicted b1 ms",
         "test % (BN recal)", "test % (+1-epoch fine-tune)", "Pareto"],
        [[f"`{r['name']}` {r['short']}", r["chosen_by"], f"{r['macs'] / 1e6:.2f}M", f"{r['params']:,}",
          f"{r['ms1']:.4f}", f"{r['ms64']:.2f}", f"{_ms(r['predicted_ms'], 1):.4f}", f"{r['test_accuracy']:.2f}",
          "" if r["ft"] is None else f"{r['ft']:.2f}", "yes" if r["name"] in front else ""] for r in rows]))
    span = max(r["ms1"] for r in rows) / min(r["ms1"] for r in rows)
    reference = (1.1 * max(r["ms1"] for r in rows), 80.0)
    summary["subnets"] = len(rows)
    summary["b1_latency_span"] = round(span, 2)
    summary["hypervolume_reference"] = reference
    summary["hypervolume_recal"] = round(hypervolume(rows, cost="ms1", accuracy="test_accuracy",
                                                     reference=reference), 4)
    tuned = [r for r in rows if r["ft"] is not None]
    if tuned:
        summary["hypervolume_finetuned"] = round(hypervolume(tuned, cost="ms1", accuracy="ft", reference=reference), 4)
        # not the ranking study (that is ofa_ranking.json): the fine-tune starts from the supernet's weights
        summary["kendall_tau_recal_vs_finetuned"] = round(kendall_tau([r["test_accuracy"] for r in tuned],
                                                                      [r["ft"] for r in tuned]), 3)
    out.append(f"\n{len(rows)} subnets spanning {span:.1f}x of measured batch-1 latency. Hypervolume "
               f"(ms x points, reference {reference[0]:.4f} ms / {reference[1]:.0f}%): "
               f"{summary['hypervolume_recal']:.4f} after BN recalibration"
               + (f", {summary['hypervolume_finetuned']:.4f} after the fine-tune" if tuned else "") + ".")
    if tuned:
        out.append(f"Kendall tau between recalibrated and fine-tuned test accuracy over {len(tuned)} subnets: "
                   f"{summary['kendall_tau_recal_vs_finetuned']:.3f} (the fine-tune starts from the supernet's "
                   "weights, so this is not the stand-alone ranking below).")
    peers = timing["peers_ms"]
    out.append("\nPeers timed in the same sweeps: " + "; ".join(
        f"{name} {_ms(ms, 1):.4f} ms b1, {_ms(ms, 64):.2f} ms b64" for name, ms in peers.items()) + ".")

    if scratch:
        out.append("\n### Against training from scratch (same 39 epochs)\n")
        by_short = {r["name"]: r for r in rows}
        srows = []
        for name, s in scratch.items():
            r = by_short.get(name)
            srows.append([f"`{name}`", f"{s['macs'] / 1e6:.2f}M", f"{s['test_accuracy']:.2f}",
                          "" if r is None else f"{r['test_accuracy']:.2f}",
                          "" if r is None or r["ft"] is None else f"{r['ft']:.2f}",
                          "" if r is None or r["ft"] is None else f"{r['ft'] - s['test_accuracy']:+.2f}"])
        out.append(markdown_table(["arch", "MACs", "from scratch, 39 epochs", "OFA, BN recal", "OFA, +1 epoch",
                                   "OFA gap (+1 epoch - scratch)"], srows))
        summary["scratch"] = scratch

    ranking = _load(args.results, "ofa_ranking.json")
    if ranking:
        tau = ranking["kendall_tau"]
        out.append(f"\n### Ranking: supernet against stand-alone\n\n{len(ranking['archs'])} uniformly random archs, fixed "
                   f"before the supernet was trained, each trained alone from random weights for "
                   f"{ranking['alone_epochs']} epochs (the from-scratch recipe). Kendall tau between the supernet's "
                   f"accuracy after BN recalibration and the stand-alone accuracy: {tau['val']:.3f} on the "
                   f"validation split, {tau['test']:.3f} on the test split.\n")
        out.append(markdown_table(["arch", "supernet val %", "alone val %", "supernet test %", "alone test %"],
                                  [[_short(r["arch"]), f"{r['supernet_val_accuracy']:.2f}", f"{r['val_accuracy']:.2f}",
                                    f"{r['supernet_test_accuracy']:.2f}", f"{r['test_accuracy']:.2f}"]
                                   for r in ranking["archs"]]))
        summary["ranking"] = {"kendall_tau": tau, "archs": len(ranking["archs"]), "alone_epochs": ranking["alone_epochs"]}

    if search:
        out.append(f"\n### Evolution, random search and the RL controller, {search['budget']} evaluations each, batch-1 latency "
                   f"<= {search['latency_ms']} ms (predicted), {len(search['seeds'])} seeds\n")
        srows = []
        for strategy in search.get("strategies", ["evolution", "random"]):
            mine = [r for r in search["runs"] if r["strategy"] == strategy]
            s = search["summary"][strategy]
            srows.append([strategy, f"{s['val_accuracy_mean']:.2f} ± {s['val_accuracy_std']:.2f}",
                          f"{s['test_accuracy_mean']:.2f} ± {s['test_accuracy_std']:.2f}",
                          ", ".join(f"{r['test_accuracy']:.2f}" for r in mine),
                          ", ".join(str(r.get("computed", "")) for r in mine)])
        out.append(markdown_table(["strategy", "best val % (mean ± std)", "its test %", "test % per seed",
                                   "evaluations computed (rest: shared cache)"], srows))
        summary["search"] = search["summary"]

    predictor = _load(args.results, "ofa_predictor.json")
    if predictor:
        q, f = predictor["held_out"], predictor["search"]
        out.append(f"\n### Accuracy predictor\n\nAn MLP (3 x 400) on the arch encoding, trained on {predictor['train']} "
                   f"of the {predictor['records']} archs the searches judged (validation accuracy after BN "
                   f"recalibration), tested on the other {q['n']}: mean absolute error {q['mean_abs_error']:.2f} "
                   f"points (largest {q['max_abs_error']:.2f}), Kendall tau {q['kendall_tau']:.3f}. An evolution "
                   f"guided by it judged {f['budget']} archs in {f['seconds']:.1f} s under {predictor['latency_ms']} "
                   f"ms: its pick was predicted at {f['predicted']:.2f}% and measured at {f['val_accuracy']:.2f}% "
                   f"(validation), {f['test_accuracy']:.2f}% (test).")
        summary["predictor"] = {"held_out": q, "search": f}

    if goal and goal["subnets"] and goal["demo_test_accuracy"] is not None:
        demo1 = _ms(goal["demo_ms"], 1)
        out.append(f"\n### Goal: int8 subnets against the demo's int8 model ({goal['demo_test_accuracy']}%, "
                   f"{demo1:.4f} ms b1 here)\n")
        grows = []
        for g in sorted(goal["subnets"], key=lambda g: _ms(g["int8_ms"], 1)):
            grows.append([f"`{g['name']}`", f"{g['int8_test_accuracy']:.2f}", f"{_ms(g['int8_ms'], 1):.4f}",
                          f"{_ms(g['int8_ms'], 64):.2f}", f"{g['onnx_bytes'] / 1e3:.0f} KB",
                          "yes" if _ms(g["int8_ms"], 1) <= demo1 else "no"])
        out.append(markdown_table(["subnet (fine-tuned, int8)", "test %", "ORT b1 ms", "ORT b64 ms", "file",
                                   "as fast as the demo at b1"], grows))
        chosen = goal["chosen"]
        if chosen:
            gap = chosen["int8_test_accuracy"] - goal["demo_test_accuracy"]
            out.append(f"\nAt the demo's batch-1 latency the best int8 subnet by validation is `{chosen['name']}`: "
                       f"{chosen['int8_test_accuracy']:.2f}% test, {gap:+.2f} points against the demo's "
                       f"{goal['demo_test_accuracy']}% ({'beats it' if gap > 0 else 'falls short'}).")
            summary["goal"] = {"chosen": chosen["name"], "accuracy": chosen["int8_test_accuracy"],
                               "demo_accuracy": goal["demo_test_accuracy"], "gap": round(gap, 2)}
        else:
            out.append("\nNo int8 subnet is as fast as the demo's int8 model at batch 1.")
            summary["goal"] = {"chosen": None}
        demo_fp32_sweep = _ms(peers["demo int8"], 1) if "demo int8" in peers else None
        fp32 = [r for r in tuned if demo_fp32_sweep is not None and r["ms1"] <= demo_fp32_sweep]
        if fp32:  # the same question without int8: fp32 subnets timed in the pareto sweep beside the demo
            best = max(fp32, key=lambda r: finetuned[r["name"]]["val_accuracy"])
            out.append(f"Without int8 (fp32, fine-tuned, timed beside the demo in the Pareto sweep: demo "
                       f"{demo_fp32_sweep:.4f} ms): `{best['name']}` at {best['ms1']:.4f} ms, {best['ft']:.2f}% test, "
                       f"{best['ft'] - goal['demo_test_accuracy']:+.2f} points.")
            summary["goal"]["fp32"] = {"name": best["name"], "accuracy": best["ft"], "ms": best["ms1"]}

    if args.latency.is_file():
        quality = json.loads(args.latency.read_text()).get("quality", {})
        summary["latency_predictor"] = quality
    text = "\n".join(out) + "\n"
    write_atomic(args.results / "ofa.md", lambda p: p.write_text(text))
    write_json_atomic(args.results / "ofa_summary.json", summary)
    _chart(rows, scratch, goal, peers, timing.get("peer_test_accuracy", {}), front, args.chart)
    print(text)
    return 0


def _chart(rows, scratch, goal, peers, zoo, front, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
    ax.scatter([r["ms1"] for r in rows], [r["test_accuracy"] for r in rows], label="OFA subnet, BN recal", marker="o")
    tuned = [r for r in rows if r["ft"] is not None]
    ax.scatter([r["ms1"] for r in tuned], [r["ft"] for r in tuned], label="OFA subnet, +1-epoch fine-tune", marker="^")
    line = [r for r in rows if r["name"] in front]
    ax.plot([r["ms1"] for r in line], [r["test_accuracy"] for r in line], lw=0.8, color="C0")
    by_name = {r["name"]: r for r in rows}
    xs = [(by_name[n]["ms1"], s["test_accuracy"]) for n, s in scratch.items() if n in by_name]
    if xs:
        ax.scatter(*zip(*xs), label="same arch from scratch, 39 epochs", marker="s")
    if goal and goal["subnets"] and goal["demo_test_accuracy"] is not None:
        ints = [(_ms(g["int8_ms"], 1), g["int8_test_accuracy"]) for g in goal["subnets"]]
        ax.scatter(*zip(*ints), label="OFA subnet, fine-tuned + int8", marker="x")
        ax.scatter([_ms(goal["demo_ms"], 1)], [goal["demo_test_accuracy"]], marker="D", color="black",
                   label="make demo (pruned ResNet, int8)")
    for name, ms in peers.items():
        if name in zoo:
            ax.scatter([_ms(ms, 1)], [zoo[name]], marker="*", s=120, color="grey")
            ax.annotate(name, (_ms(ms, 1), zoo[name]), textcoords="offset points", xytext=(5, 4), fontsize=8)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FormatStrFormatter("%.2f"))
    ax.xaxis.set_minor_formatter(matplotlib.ticker.FormatStrFormatter("%.2f"))
    ax.set_xlabel("ONNX Runtime latency, batch 1, 1 thread (ms, measured; log scale)")
    ax.set_ylabel("test accuracy (%), Fashion-MNIST")
    ax.set_title("Once-for-all subnets of one supernet vs zoo baselines")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
