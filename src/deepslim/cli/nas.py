"""`deepslim nas`: once-for-all NAS in three steps, all in one folder.

    deepslim nas supernet --space ofa-mbconv --data fashion-mnist --out runs/ofa   # train (resumable)
    deepslim nas latency-table runs/ofa                                            # time this machine
    deepslim nas search runs/ofa --latency-ms 0.1 --strategy evolution --out runs/ofa-best

The folder holds ``nas.json`` (the space and how the supernet is trained), ``checkpoint.pt`` while training,
``supernet/`` (a ``deepslim.save`` artifact) once trained, and ``latency.json`` once timed.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..core import DeepslimError, log, resolve_device, seed_everything
from ..data import load_dataset
from ..nas.space import MBConvSpace, get_space, list_spaces, space_from_dict
from .args import add_command, command_line, data_options, data_record, parse_value, print_json

MANIFEST = "nas.json"
CHECKPOINT = "checkpoint.pt"
SUPERNET = "supernet"
LATENCY = "latency.json"


def add_parser(sub) -> None:
    from . import nas_enas, nas_search

    p = add_command(sub, "nas", help="once-for-all NAS: train a supernet, time its blocks, search subnets",
                    description="Once-for-all architecture search in three steps sharing one folder DIR: "
                                "`nas supernet` trains an elastic supernet by progressive shrinking (resumable), "
                                "`nas latency-table` times every block it can be built from on ONNX Runtime on "
                                "this machine, `nas search` picks the most accurate subnet under a latency, MACs "
                                "or params limit and saves it as a standalone model. `nas enas` runs ENAS one-shot "
                                "search (shared weights and an RL controller, or the random / evolution controls).",
                    epilog="Example: deepslim nas supernet --space ofa-mbconv --data fashion-mnist --out runs/ofa; "
                           "deepslim nas latency-table runs/ofa; deepslim nas search runs/ofa --latency-ms 0.1 "
                           "--strategy evolution --out runs/ofa-best")
    nas_sub = p.add_subparsers(dest="nas_command", metavar="STEP")
    _add_supernet(nas_sub)
    _add_latency_table(nas_sub)
    nas_search.add_parser(nas_sub)
    nas_enas.add_parser(nas_sub)
    p.set_defaults(func=lambda args: _missing_step(p))


def _missing_step(parser) -> int:
    parser.print_help()
    return 2


def add_space_option(p, example: str = "widths=8,8,16,16", space=None) -> None:
    fields = (space or MBConvSpace()).options()
    p.add_argument("--space-option", action="append", metavar="KEY=VALUE",
                   help=f"override a field of the space, repeatable, e.g. --space-option {example} "
                        "(fields: " + ", ".join(fields) + ")")


def space_options(items) -> dict:
    """``["widths=8,16", "depth_choices=1,2"]`` -> ``{"widths": (8, 16), "depth_choices": (1, 2)}``."""
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise DeepslimError(f"--space-option '{item}' is not KEY=VALUE",
                                hint="e.g. --space-option widths=8,8,16,16")
        value = parse_value(value.strip())
        out[key.strip().replace("-", "_")] = value
    for key in ("widths", "strides", "depth_choices", "kernel_choices", "expand_choices", "reduce_after", "ops"):
        if key in out and not isinstance(out[key], tuple):
            out[key] = (out[key],)
    return out


# --- the folder -------------------------------------------------------------------------------------
def read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
        space = space_from_dict(data["space"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DeepslimError(f"{path} is corrupt", hint="train the supernet again in a new folder") from exc
    return {**data, "space_obj": space}


def require_supernet_folder(folder: Path, step: str) -> dict:
    """The manifest of a folder holding a trained supernet, or a one-line error naming what to run first."""
    manifest = read_manifest(folder) if folder.is_dir() else None
    if manifest is None:
        raise DeepslimError(f"{folder} is not a `deepslim nas supernet` folder (no {MANIFEST})",
                            hint="train one with `deepslim nas supernet --space ofa-mbconv --data D --out DIR`")
    if step == "search" and not (folder / SUPERNET).is_dir():
        raise DeepslimError(f"the supernet in {folder} has not finished training",
                            hint="rerun `deepslim nas supernet ... --resume` with the same options")
    return manifest


# --- nas supernet ---------------------------------------------------------------------------------------
def _add_supernet(sub) -> None:
    from ..nas.shrinking import ShrinkingConfig

    d = ShrinkingConfig()
    default_epochs = ",".join(str(d.epochs(ph)) for ph in ("largest", "kernel", "depth", "expand"))
    p = add_command(sub, "supernet", help="train an elastic supernet by progressive shrinking",
                    description="Train the supernet of a search space by progressive shrinking: the largest net "
                                "first, then kernel size, depth and expand ratio become elastic in turn, with "
                                "knowledge distillation from the largest net. A checkpoint is written to --out after "
                                "every epoch; an interrupted run continues with --resume. The trained supernet is "
                                "saved in OUT/supernet (deepslim.save) with the space, phases, epochs and data in "
                                "its metadata.",
                    epilog="Example: deepslim nas supernet --space ofa-mbconv --data fashion-mnist --out runs/ofa")
    p.add_argument("--space", default="ofa-mbconv", choices=list_spaces(), help="search space, default ofa-mbconv")
    add_space_option(p)
    p.add_argument("--data", required=True, metavar="NAME", help="data set name (see `deepslim zoo`)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    p.add_argument("--out", required=True, type=Path, help="folder for the checkpoint and the trained supernet")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--epochs-per-phase", default=default_epochs, metavar="A,B,C,D",
                   help=f"epochs of the phases largest, kernel, depth, expand; default {default_epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"training batch size, default {d.batch_size}")
    p.add_argument("--kernel-transform", choices=("transform", "crop"), default="transform",
                   help="smaller kernels from the 7x7 through learned matrices (transform, default) or a centre crop")
    p.add_argument("--subset", type=int, metavar="N", help="train on only N images of the training pool")
    p.add_argument("--seed", type=int, default=d.seed, help=f"seed of the data split and training; default {d.seed}")
    p.add_argument("--calibration-size", type=int, default=2000,
                   help="training images for BN recalibration before the final validation; default 2000")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_supernet)


def _epochs(text: str) -> tuple[int, int, int, int]:
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 4 or any(v < 0 for v in values):
        raise DeepslimError(f"--epochs-per-phase '{text}' must be four non-negative integers",
                            hint="epochs of the phases largest, kernel, depth, expand, e.g. 15,6,8,10")
    return values


def _prepare_supernet_folder(out: Path, identity: dict, resume: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DeepslimError(f"--out {out} exists and is not a folder", hint="choose another --out")
    manifest = read_manifest(out) if out.is_dir() else None
    busy = out.is_dir() and any(out.iterdir())
    if manifest is None:
        if busy:
            raise DeepslimError(f"--out {out} holds files that are not a `deepslim nas` folder",
                                hint="choose an empty or new folder")
        if resume:
            raise DeepslimError(f"nothing to resume in {out}", hint="drop --resume to start training")
        return
    if manifest["space"] != identity["space"]:
        theirs = manifest["space"].get("name")
        raise DeepslimError(f"--out {out} holds a supernet of another search space ({theirs} with other options)",
                            hint="choose another --out, or give the same --space and --space-option values")
    if (out / SUPERNET).is_dir():
        raise DeepslimError(f"--out {out} already holds a trained supernet" + ("; nothing to resume" if resume else ""),
                            hint="choose another --out")
    if not resume:
        raise DeepslimError(f"--out {out} already holds an interrupted run",
                            hint="add --resume to continue it, or choose another --out")
    if manifest.get("config") != identity["config"] or manifest.get("data") != identity["data"]:
        raise DeepslimError(f"the run in {out} was started with other training options or data",
                            hint="resume with the same options as the first run")


def open_search_folder(args, space, identity: dict):
    """Check ``args.out`` for a new or resumed run of ``identity``, load the data (it must fit the space)
    and write the folder's manifest; returns the data."""
    _prepare_supernet_folder(args.out, identity, args.resume)
    data = load_dataset(args.data, subset=args.subset, seed=args.seed, **data_options(args))
    if tuple(data.input_shape)[0] != space.in_channels or data.num_classes != space.num_classes:
        raise DeepslimError(f"data set {data.name} has {data.input_shape[0]} channels and {data.num_classes} classes, "
                            f"the space {space.in_channels} and {space.num_classes}",
                            hint="set them with --space-option in_channels=N --space-option num_classes=N")
    args.out.mkdir(parents=True, exist_ok=True)
    if not (args.out / MANIFEST).is_file():
        (args.out / MANIFEST).write_text(json.dumps({**identity, "command": command_line(args)}, indent=1))
    return data


def run_supernet(args) -> int:
    from ..export import save
    from ..nas import Evaluator, OFASupernet
    from ..nas.shrinking import PHASES, ShrinkingConfig, progressive_shrinking

    space = get_space(args.space, **space_options(args.space_option))
    if not isinstance(space, MBConvSpace):
        raise DeepslimError(f"`nas supernet` trains once-for-all spaces; '{args.space}' is an ENAS space",
                            hint="use `deepslim nas enas` for it, or --space ofa-mbconv")
    epochs = _epochs(args.epochs_per_phase)
    config = ShrinkingConfig(**{f"epochs_{ph}": e for ph, e in zip(PHASES, epochs)}, batch_size=args.batch_size,
                             seed=args.seed)
    if args.calibration_size < 1:
        raise DeepslimError(f"--calibration-size {args.calibration_size} must be >= 1", hint="e.g. 2000")
    out = args.out
    data_id = {"name": args.data, "subset": args.subset, "seed": args.seed}
    identity = {"space": space.to_dict(), "kernel_transform": args.kernel_transform, "config": config.to_dict(),
                "data": data_id}
    data = open_search_folder(args, space, identity)
    device = resolve_device(args.device)
    seed_everything(args.seed)
    net = OFASupernet.from_space(space, args.kernel_transform)
    args.interrupt_hint = (f"the last finished epoch is saved in {out / CHECKPOINT}; rerun the same command with "
                           "--resume to continue")
    log(f"progressive shrinking: {', '.join(f'{ph} {e}' for ph, e in zip(PHASES, epochs))} epochs "
        f"on {len(data.train):,} training images of {data.name}")
    history = progressive_shrinking(net, data.train, config, checkpoint=out / CHECKPOINT, resume=args.resume,
                                    device=device)
    args.interrupt_hint = None
    net = net.cpu().eval()
    judge = Evaluator(net, data.train, data.val, calibration_size=min(args.calibration_size, len(data.train)))
    validation = {name: round(judge(getattr(space, name)()).accuracy, 2) for name in ("largest", "smallest")}
    meta = {"nas": {"role": "supernet", "space": space.to_dict(), "kernel_transform": args.kernel_transform,
                    "phases": list(PHASES), "epochs_per_phase": dict(zip(PHASES, epochs)),
                    "config": config.to_dict(), "data": data_record(data, args.subset),
                    "val_accuracy_after_recalibration": validation, "resumed": args.resume, "history": history,
                    "command": command_line(args)}}
    save(net, out / SUPERNET, metadata=meta, overwrite=True)
    (out / CHECKPOINT).unlink(missing_ok=True)
    summary = {"out": str(out), "space": space.name, "epochs_per_phase": dict(zip(PHASES, epochs)),
               "val_accuracy_largest": validation["largest"], "val_accuracy_smallest": validation["smallest"]}
    if args.json:
        print_json(summary)
    else:
        print(f"supernet saved to {out / SUPERNET}; validation accuracy after BN recalibration: largest "
              f"{validation['largest']:.2f}%, smallest {validation['smallest']:.2f}%")
        print(f"next: deepslim nas latency-table {out}")
    return 0


# --- nas latency-table ------------------------------------------------------------------------------------
def _add_latency_table(sub) -> None:
    p = add_command(sub, "latency-table", help="time every block of the supernet's space on ONNX Runtime here",
                    description="Build the latency table for this machine: every block configuration the space "
                                "allows (per stage, first or later block, kernel, expand ratio, at its input size), "
                                "the stem and the head are each exported alone to ONNX and timed on ONNX Runtime "
                                "(CPU, threads fixed) at each batch size. A subnet's latency is predicted as the sum "
                                "of its parts plus an overhead (a constant and a per-part term) fitted on a few whole "
                                "subnets timed in the same sweeps; the predictor "
                                "is then checked on --quality held-out subnets timed whole. Writes DIR/latency.json "
                                "(with the CPU, threads, onnxruntime version and date).",
                    epilog="Example: deepslim nas latency-table runs/ofa --threads 2 --batch-sizes 1,64")
    p.add_argument("dir", type=Path, metavar="DIR", help="the folder of `deepslim nas supernet`")
    p.add_argument("--threads", type=int, default=2, help="ONNX Runtime intra-op threads, default 2 (on a machine shared with other jobs, 1 "
                        "thread times far more steadily)")
    p.add_argument("--batch-sizes", default="1,64", help="batch sizes to time, default 1,64")
    p.add_argument("--seconds", type=float, default=0.1,
                   help="minimum timing per part (and per whole subnet), batch size and round, in seconds; "
                        "default 0.1")
    p.add_argument("--rounds", type=int, default=3,
                   help="sweeps over all parts; an entry is the median over sweeps; default 3")
    p.add_argument("--quality", type=int, default=50, metavar="N",
                   help="held-out subnets timed whole to report the predictor's error (0: skip); default 50")
    p.add_argument("--image-size", type=int, default=28, help="input height and width, default 28")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.set_defaults(func=run_latency_table)


def _batch_sizes(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        values = ()
    if not values or any(v < 1 for v in values):
        raise DeepslimError(f"--batch-sizes '{text}' must be positive integers", hint="e.g. --batch-sizes 1,64")
    return values


def run_latency_table(args) -> int:
    from ..nas.latency_quality import predictor_quality
    from ..nas.latency_table import build_latency_table

    manifest = require_supernet_folder(args.dir, "latency-table")
    batches = _batch_sizes(args.batch_sizes)
    if args.quality < 0 or args.quality == 1:
        raise DeepslimError(f"--quality {args.quality} must be 0 (skip) or at least 2", hint="e.g. --quality 50")
    if not args.seconds > 0:
        raise DeepslimError(f"--seconds {args.seconds} must be positive", hint="e.g. --seconds 0.1")
    table = build_latency_table(manifest["space_obj"], batch_sizes=batches, threads=args.threads,
                                min_seconds=args.seconds, rounds=args.rounds, image_size=args.image_size)
    if args.quality:
        report = predictor_quality(table, args.quality)
        table.quality = report
    path = table.save(args.dir / LATENCY)
    summary = {"path": str(path), "parts": len(table.entries), "threads": args.threads,
               "overhead_ms": {str(b): v for b, v in table.overhead_ms.items()},
               "quality": {k: v for k, v in table.quality.items() if k != "rows"}}
    if args.json:
        print_json(summary)
        return 0
    print(f"latency table: {len(table.entries)} parts, batch {', '.join(map(str, batches))}, {args.threads} threads "
          f"({table.environment.get('cpu')}); saved to {path}")
    for b in batches:
        line = f"  batch {b}: overhead {table.overhead_ms[b]:+.3f} ms"
        q = table.quality.get(str(b))
        if q:
            line += (f"; on {q['n']} held-out subnets: mean abs error {q['mean_abs_percent_error']:.1f}%, "
                     f"{q['within_10_percent']:.0f}% within ±10%, Kendall tau {q['kendall_tau']:.3f}")
        print(line)
    return 0

