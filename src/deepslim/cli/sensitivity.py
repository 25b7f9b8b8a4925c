"""`deepslim sensitivity`: per-layer channel-pruning sensitivity of a saved model (table, JSON, PNG)."""

from __future__ import annotations

from pathlib import Path

from ..core import DeepslimError, log, resolve_device
from ..core.text import plural
from ..data import load_dataset
from ..export.files import write_json_atomic
from ..prune import sensitivity_scan
from .args import add_command, add_subset_arg, data_options, data_record, print_json, training_images
from .options import refuse_model_args
from .resolve import add_model_source_args, resolve_model

BN_IMAGES = 2048  # training images BatchNorm statistics are re-estimated on in every trial


def add_parser(sub) -> None:
    p = add_command(sub, "sensitivity", help="per-layer pruning sensitivity sweep",
                    description="Prune one layer at a time (with the channels that depend on it) to each ratio and "
                                "measure validation accuracy (BatchNorm statistics re-estimated first): a table, sensitivity.json and sensitivity.png.")
    add_model_source_args(p)
    p.add_argument("--ratios", default="0.25,0.5,0.75", help="fractions of channels to remove, default 0.25,0.5,0.75")
    p.add_argument("--importance", choices=("l1", "l2", "bn_scale", "fpgm", "random"), default="l2",
                   help="how channels are ranked; default l2")
    p.add_argument("--layers", help="comma-separated layer names (default: every conv/linear but the head)")
    p.add_argument("--no-recalibrate", action="store_true",
                   help=f"skip re-estimating BatchNorm statistics (on {BN_IMAGES:,} training images) in every trial")
    p.add_argument("--finetune-images", type=int, default=0, metavar="N",
                   help="let every trial recover on N training images before it is judged (drops taken against "
                        "the unpruned model given the same fine-tune); default 0 (no fine-tune)")
    p.add_argument("--out", type=Path, help="folder for sensitivity.json and .png (default: DIR/sensitivity)")
    p.add_argument("--data-dir", metavar="DIR", help="folder holding the data set's files")
    add_subset_arg(p, "BatchNorm re-estimation and the trials' fine-tunes (the validation images that judge "
                      "each trial are carved from them too)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    refuse_model_args(args)
    try:
        ratios = tuple(float(r) for r in args.ratios.split(",") if r.strip())
    except ValueError as exc:
        raise DeepslimError(f"--ratios '{args.ratios}' is not a list of numbers", hint="e.g. --ratios 0.25,0.5") from exc
    if not ratios or any(not 0 < r < 1 for r in ratios):
        raise DeepslimError(f"--ratios {args.ratios} must be numbers in (0, 1)")
    if args.finetune_images < 0:
        raise DeepslimError(f"--finetune-images {args.finetune_images} is negative", hint="e.g. --finetune-images 6400")
    resolved = resolve_model(args.model, args.model_dir)
    data_name = resolved.model.deepslim_metadata.get("dataset", {}).get("name")
    if not data_name:
        raise DeepslimError(f"{resolved.label} does not record its data set")
    data = load_dataset(data_name, subset=args.subset, **data_options(args))
    steps = [] if args.no_recalibrate else [
        f"BatchNorm statistics re-estimated on {training_images(data, args.subset, BN_IMAGES)}"]
    if args.finetune_images:
        steps.append(f"a fine-tune on {plural(args.finetune_images, 'training image')}")
    log(f"each trial is judged on {plural(len(data.val), 'validation image')} of {data.name}"
        + (f" after {' and '.join(steps)}" if steps else ""))
    device = resolve_device(args.device)
    model = resolved.model.to(device)
    layers = [n.strip() for n in args.layers.split(",")] if args.layers else None
    result = sensitivity_scan(model, data.val, data.test.images[:1].to(device), ratios=ratios,
                              importance=args.importance, layers=layers,
                              calibration_images=None if args.no_recalibrate else data.train.images[:BN_IMAGES],
                              train_data=data.train, finetune_images=args.finetune_images)
    out = args.out or ((resolved.artifact_dir / "sensitivity") if args.model_dir else Path(f"sensitivity-{resolved.label}"))
    write_json_atomic(out / "sensitivity.json", {**result.to_dict(), "data": data_record(data, args.subset)})
    result.plot(out / "sensitivity.png")
    if args.json:
        print_json(result.to_dict())
    else:
        print(result.table())
        print(f"\nwrote {out / 'sensitivity.json'} and {out / 'sensitivity.png'}")
    return 0
