"""`deepslim auto`: compress to a target automatically (Optuna search, full runs of the best plans)."""

from __future__ import annotations

from pathlib import Path

from ..core import DeepslimError, resolve_device
from .args import add_command, command_line, print_json
from .resolve import add_model_source_args, resolve_model_and_data

# Exit statuses: 0 met; these tell the rest apart (2 stays a usage or input error, 130 an interrupt).
EXIT = {"met": 0, "searched": 0, "not met": 3, "budget exhausted": 4}


def add_parser(sub) -> None:
    from ..auto.target import valid_targets

    p = add_command(sub, "auto", help="compress to a target automatically (search plans, finish the best)",
                    description="Search compression plans (residual blocks dropped, channel pruning, factorization, int8 PTQ or QAT, KD "
                                "epochs; for text: layers, FFN neurons, heads, dynamic int8) with Optuna: many short trials "
                                "(fine-tunes on a subset, scored on the validation split, latency measured on ONNX "
                                "Runtime), then full runs of the top plans (scored on the test split) and one "
                                "interleaved timing of them against the input model. Publishes the fastest plan "
                                "within --max-drop as OUT/model, OUT/model.onnx and OUT/recipe.yaml, with "
                                "OUT/metrics.json (status, Pareto front, fallback, trials) and OUT/report.html. "
                                "Rerun the same command to resume; start it again elsewhere with the same "
                                "--storage to add workers. Exit status: 0 met, 3 not met, 4 budget exhausted, "
                                "130 interrupted (finished trials are kept).")
    add_model_source_args(p)
    p.add_argument("--pretrained", metavar="NAME", help="a shipped baseline, e.g. fmnist-resnet (same as --model)")
    p.add_argument("--target", required=True, help=f"what to reach: {valid_targets()}")
    p.add_argument("--max-drop", type=float, default=0.5, help="accuracy points (retrieval: recall@1) the result may "
                                                               "lose, default 0.5")
    p.add_argument("--budget", default="2h", help="wall time for the whole run, e.g. 2h, 45m, 600s (default 2h)")
    p.add_argument("--batch", type=int, default=1, help="batch size the latency target is measured at (default 1)")
    p.add_argument("--trials", type=int, help="stop the search after this many finished trials (default: budget)")
    p.add_argument("--top-k", type=int, default=3, help="at most this many plans get a full run, picked one at a time: each after the runs before it "
                        "measured how much the proxy overstates the loss (default 3); time left after them goes to a longer "
                        "fine-tune of the fastest one that missed the bound by a little")
    p.add_argument("--proxy-images", type=int, default=8192,
                   help="training samples a trial fine-tunes on (default 8192)")
    p.add_argument("--proxy-epoch-scale", type=float, default=0.15,
                   help="a trial trains this fraction of the plan's epochs, at least one (default 0.15)")
    p.add_argument("--proxy-slack", type=float, default=3.0,
                   help="extra points a trial may lose and still count as feasible: its short fine-tune recovers "
                        "less than the full one (on the flagship, 2-3 points less; default 3.0). It also bounds the "
                        "first finalist; later ones are picked by the measured full/proxy loss ratio")
    p.add_argument("--retime", type=int, default=8,
                   help="before the pick, time this many of the best plans again, together (default 8)")
    p.add_argument("--sampler", default="tpe", choices=("tpe", "nsga2", "random"),
                   help="Optuna sampler (default tpe; random is the peer baseline)")
    p.add_argument("--seed", type=int, default=0, help="sampler and training seed (default 0)")
    p.add_argument("--no-starting-plans", dest="starting_plans", action="store_false",
                   help="don't begin a new search with the shipped recipes' plans (recipes/prune-quantize.yaml, "
                        "drop-prune-quantize.yaml, minilm-search*.yaml, those the model fits); by default they run first")
    p.add_argument("--workers", type=int, default=1, help="search processes on this machine (default 1)")
    p.add_argument("--storage", metavar="URL", help="study in a database shared by machines, e.g. "
                                                    "postgresql://user:pw@host/db (default: OUT/study.journal)")
    p.add_argument("--study-name", default="deepslim-auto", help="study name within --storage")
    p.add_argument("--search-only", action="store_true",
                   help="only add trials to the --storage study, for the whole --budget, then stop: the run started "
                        "without this flag (on any machine) picks and finishes the best plans, this machine's included")
    p.add_argument("--ray", metavar="ADDRESS", help="run the search's workers as Ray tasks: a cluster address, auto "
                                                    "(the one running here) or local (start one here)")
    p.add_argument("--latency-seconds", type=float, default=0.5,
                   help="time per model per latency measurement in a trial (default 0.5)")
    p.add_argument("--final-latency-seconds", type=float, default=1.0,
                   help="the same for the finalists' full runs; their final timing in turns uses 10x this (default 1.0)")
    p.add_argument("--data", help="data set name (default: the one the model was trained on)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--subset", type=int, help="use only this many training samples for every fine-tune")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (training); latency is measured on CPU")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    p.add_argument("--overwrite", action="store_true", help="replace a finished or different run in --out")
    p.add_argument("--json", action="store_true", help="print metrics.json")
    p.set_defaults(func=run)


def _config(args):
    from ..auto import AutoConfig, parse_budget, parse_target

    target = parse_target(args.target)
    budget = parse_budget(args.budget)
    checks = [(args.max_drop >= 0, "--max-drop must be >= 0"), (args.batch >= 1, "--batch must be >= 1"),
              (args.trials is None or args.trials >= 1, "--trials must be >= 1"), (args.top_k >= 1, "--top-k must be >= 1"), (args.retime >= 0, "--retime must be >= 0"),
              (args.proxy_images >= 16, "--proxy-images must be >= 16"),
              (0 < args.proxy_epoch_scale <= 1, "--proxy-epoch-scale must lie in (0, 1]"),
              (args.proxy_slack >= 0, "--proxy-slack must be >= 0"), (args.workers >= 1, "--workers must be >= 1"),
              (args.latency_seconds > 0 and args.final_latency_seconds > 0, "latency seconds must be > 0"),
              (not args.search_only or args.storage, "--search-only adds trials to a study shared with another run: "
                                                     "give the same --storage URL that run uses")]
    for ok, message in checks:
        if not ok:
            raise DeepslimError(message)
    return AutoConfig(target=target, max_drop=args.max_drop, budget_s=budget, batch=args.batch, trials=args.trials,
                      proxy_images=args.proxy_images, proxy_epoch_scale=args.proxy_epoch_scale,
                      proxy_slack=args.proxy_slack, top_k=args.top_k, sampler=args.sampler, seed=args.seed,
                      workers=args.workers, storage=args.storage, study_name=args.study_name, ray=args.ray,
                      latency_seconds=args.latency_seconds, final_latency_seconds=args.final_latency_seconds,
                      retime=args.retime, search_only=args.search_only, starting_plans=args.starting_plans)


def run(args) -> int:
    from ..auto import auto_compress
    from ..auto.study import open_storage

    config = _config(args)                # target, budget and limits: refused before any work
    device = resolve_device(args.device)
    if config.storage:
        open_storage(config.storage, args.out)  # an unreachable database is said now, not after the baseline
    if config.ray:
        from ..auto.ray_workers import connect

        connect(config.ray)
    resolved, data, data_name, options, out = resolve_model_and_data(args)
    command = command_line(args) or ""
    if config.storage:  # the command is recorded in metrics.json and the report: never with the password
        from ..auto.study import redact

        command = command.replace(config.storage, redact(config.storage))
    result = auto_compress(resolved.model, data, config, out, device=device,
                           data_spec={"name": data_name, "subset": args.subset, "options": options},
                           source=resolved.label, command=command.replace(" --overwrite", ""),
                           overwrite=args.overwrite)
    if args.json:
        print_json(result)
    else:
        _print(result, args.out)
    return EXIT[result["status"]]


def _print(result: dict, out: Path) -> None:
    from ..auto.picking import pick_text

    rows = [r for r in result["trials"] if r.get("accuracy") is not None]
    if result["status"] == "searched":
        mine = sum(1 for r in rows if r.get("repeat_of") is None and (out / "trials" / f"{r['trial']:04d}").is_dir())
        print(f"search only: {mine} trial(s) run here; the study ({result['storage']['url']}) holds "
              f"{len(rows)}. The run started without --search-only picks and finishes the best plans.")
        return
    print(f"{'trial':>5}  {'plan':<58}{'val %':>7}{'drop':>7}{'speed-up':>9}{'ORT ms':>8}{'MACs (M)':>9}  feasible")
    for r in rows:
        print(f"{r['trial']:>5}  {r['description'][:57]:<58}{r['accuracy']:>7.2f}{r['drop']:>+7.2f}{r['speedup']:>8.2f}x"
              f"{r['ort_latency_ms']:>8.3f}{r['macs'] / 1e6:>9.2f}  {'yes' if r['feasible'] else ''}")
    print(f"\nfinalists (full fine-tune, test split, timed together at batch {result['batch']}):")
    for f in result.get("finalists", []):
        m = f.get("measured")
        print(f"  trial {f['trial']}: {f['description']}: " + (
            f"{m['accuracy']:.2f}% ({-m['drop']:+.2f}), {m['speedup']:.2f}x "
            f"[{m['speedup_range'][0]:.2f}-{m['speedup_range'][1]:.2f}], {m['macs'] / 1e6:.2f}M MACs, "
            f"{m['size_mb']:.3f} MB" if m else f"skipped ({f['skipped']})" if f.get("skipped") else
            f"failed ({f.get('error')})"))
        if f.get("pick"):
            print(f"    picked: {pick_text(f['pick'])}")
    pub = result.get("published")
    print(f"\nstatus: {result['status']} (target {result['target']}, at most {result['max_drop']} points lost)")
    if pub:
        print(f"published: trial {pub['trial']} ({pub['kind']}): {pub['description']}: {pub['accuracy']:.2f}% "
              f"({-pub['drop']:+.2f}), {pub['speedup']:.2f}x at batch {result['batch']}")
    print(f"report: {out / 'report.html'}; model: {out / 'model'}; recipe: {out / 'recipe.yaml'}; "
          f"study: {result['storage'].get('path') or result['storage']['url']}")
