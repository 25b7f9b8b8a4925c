"""`deepslim factorize`: low-rank factorization of a saved model, optionally after force
regularization and followed by a fine-tune; evaluated and saved elsewhere."""

from __future__ import annotations

import time

from ..core import DeepslimError, log, resolve_device
from ..core.text import plural
from ..data import load_dataset
from ..export import save
from ..export.model_card import write_model_card
from ..lowrank import Factorization, ForceRegularization, factorize_
from ..lowrank.config import METHODS, SELECTIONS
from ..train import TrainConfig, Trainer, evaluate, recalibrate_batchnorm_
from .args import (
    add_command,
    add_derived_output_args,
    check_output_dir,
    command_line,
    data_options,
    data_record,
    derived_metadata,
    describe_data,
    print_json,
    replace_output_dir,
    training_images,
)
from .options import check_count, fill_defaults, given, refuse_model_args, refuse_unless
from .recovery import add_distill_args, check_distill_args, recovery_callbacks, teacher_copy
from .resolve import add_model_source_args, resolve_model

DEFAULTS = {"selection": "energy", "force_reg": 0.0, "force_epochs": 0, "force_form": "degradation",
            "finetune_epochs": 0, "lr": 0.01}
BN_IMAGES = 2048  # training images BatchNorm statistics are re-estimated on after factorizing


def add_parser(sub) -> None:
    p = add_command(sub, "factorize", help="low-rank factorization (SVD, spatial SVD, Tucker-2)",
                    description="Replace conv/linear layers by chains of smaller ones: 'svd' (linear: two linears; "
                                "conv: k x k with r filters then 1 x 1), 'spatial' (k x 1 then 1 x k), 'tucker' "
                                "(1 x 1, k x k core, 1 x 1). Ranks from --energy (kept squared singular values per "
                                "layer) or --mac-ratio (the whole model's MACs). Optionally train with force "
                                "regularization first (--force-reg), then re-estimate BatchNorm statistics, fine-tune "
                                "after, evaluate on the full test split.")
    add_model_source_args(p)
    p.add_argument("--method", choices=METHODS, default="svd", help="decomposition; default svd")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--energy", type=float, metavar="E",
                        help="keep this fraction of each layer's energy, in (0, 1]")
    target.add_argument("--mac-ratio", type=float, metavar="F",
                        help="fraction of the model's MACs to keep at most, in (0, 1), e.g. 0.5 keeps half")
    p.add_argument("--selection", choices=SELECTIONS,
                   help="with --mac-ratio: the same kept energy everywhere (default energy), or per-layer ranks from "
                        "a validation sweep (least accuracy lost per MAC saved; slower)")
    p.add_argument("--layers", help="comma-separated layer names or regexes (default: every conv/linear but the head)")
    p.add_argument("--force-reg", type=float, metavar="LAMBDA",
                   help="train with force regularization of this strength first (e.g. 1e-3); needs --force-epochs")
    p.add_argument("--force-epochs", type=int, metavar="N",
                   help="epochs of force-regularized training before factorizing; needs --force-reg; default 0")
    p.add_argument("--force-form", choices=("degradation", "constant"),
                   help="with --force-reg: force form (Wen et al. 2017); default degradation")
    p.add_argument("--finetune-epochs", type=int, metavar="N", help="fine-tune for N epochs after; default 0")
    p.add_argument("--lr", type=float, help="learning rate of both trainings (SGD, cosine); default 0.01")
    add_distill_args(p)
    add_derived_output_args(p, "factorized model")
    p.set_defaults(func=run)


def check_args(args) -> None:
    """Refuse options that would not act, then fill the defaults of those left unset."""
    refuse_model_args(args)
    refuse_unless(args, "selection", args.mac_ratio is not None, "--mac-ratio",
                  "--energy gives every layer that energy; --selection chooses ranks for a --mac-ratio target")
    for dest in ("force_epochs", "finetune_epochs"):
        check_count(args, dest)
    if given(args, "subset"):
        check_count(args, "subset", 2)
    if given(args, "force_reg") and args.force_reg < 0:
        raise DeepslimError(f"--force-reg {args.force_reg} must be >= 0", hint="e.g. --force-reg 1e-3")
    if bool(args.force_reg) != bool(args.force_epochs):
        raise DeepslimError("--force-reg and --force-epochs go together",
                            hint="e.g. --force-reg 1e-3 --force-epochs 2")
    refuse_unless(args, "force_form", bool(args.force_reg), "--force-reg", "e.g. --force-reg 1e-3 --force-epochs 2")
    refuse_unless(args, "lr", bool(args.finetune_epochs or args.force_epochs), "--finetune-epochs or --force-epochs",
                  "it is the learning rate of those trainings")
    check_distill_args(args, bool(args.finetune_epochs), "--finetune-epochs")
    fill_defaults(args, DEFAULTS)


def run(args) -> int:
    check_args(args)
    layers = [n.strip() for n in args.layers.split(",") if n.strip()] if args.layers else None
    config = Factorization(method=args.method, energy=args.energy, mac_ratio=args.mac_ratio,
                           selection=args.selection, layers=layers)
    resolved = resolve_model(args.model, args.model_dir)
    check_output_dir(args.out, resolved.artifact_dir, args.overwrite)
    meta = dict(getattr(resolved.model, "deepslim_metadata", None) or {})
    data_name = meta.get("dataset", {}).get("name")
    if not data_name:
        raise DeepslimError(f"{resolved.label} does not record its data set",
                            hint="factorize a model saved by deepslim train")
    args.interrupt_hint = "nothing was written to --out; rerun the same command" + \
        ("" if args.subset or not (args.finetune_epochs or args.force_epochs) else " (--subset N trains on fewer)")
    device = resolve_device(args.device)
    data = load_dataset(data_name, subset=args.subset, **data_options(args))
    log(describe_data(data, args.subset, "calibration and training"))
    model = resolved.model.to(device)
    example = data.test.images[:1].to(device)
    before = evaluate(model, data.test, device=device, desc="test (before)")
    teacher = teacher_copy(args, model)
    started = time.perf_counter()
    history = {}
    if args.force_epochs:
        log(f"force-regularized training ({args.force_form}, strength {args.force_reg:g}) for "
            f"{plural(args.force_epochs, 'epoch')} on {training_images(data, args.subset)}")
        force = ForceRegularization(model, strength=args.force_reg, form=args.force_form, layers=layers)
        cfg = TrainConfig(epochs=args.force_epochs, lr=args.lr, schedule="cosine")
        history["force"] = Trainer(model, cfg, callbacks=[force], device=device).fit(data.train, val_data=data.val)
    plan = factorize_(model, config, example, val_data=data.val)
    bn_images = training_images(data, args.subset, BN_IMAGES)
    log(f"re-estimating BatchNorm statistics on {bn_images}: factorized layers change what later layers see")
    recalibrate_batchnorm_(model, data.train.images[:BN_IMAGES])
    factorized = evaluate(model, data.test, device=device, desc="test (factorized)")
    if args.finetune_epochs:
        log(f"fine-tuning {plural(args.finetune_epochs, 'epoch')} on {training_images(data, args.subset)}"
            + (" with distillation from the input model" if teacher is not None else ""))
        cfg = TrainConfig(epochs=args.finetune_epochs, lr=args.lr, schedule="cosine")
        callbacks = recovery_callbacks(args, teacher, model, data, device)
        history["finetune"] = Trainer(model, cfg, callbacks=callbacks, device=device).fit(data.train, val_data=data.val)
    after = evaluate(model, data.test, device=device, desc="test (after)") if args.finetune_epochs else factorized
    summary = {"method": args.method, "config": config.to_dict(), "force_reg": args.force_reg,
               "force_epochs": args.force_epochs, "finetune_epochs": args.finetune_epochs,
               "distilled": teacher is not None and args.finetune_epochs > 0,
               "accuracy_before": before["accuracy"],
               "accuracy_factorized": factorized["accuracy"], "accuracy_after": after["accuracy"],
               "macs_before": plan.macs_before, "macs_after": plan.macs_after, "params_before": plan.params_before,
               "params_after": plan.params_after, "seconds": round(time.perf_counter() - started, 1),
               "data": data_record(data, args.subset), "batchnorm_reestimated": True, "command": command_line(args)}
    new_meta = derived_metadata(meta, after, "factorization", {**summary, "source": resolved.label,
                                                                "history": history})

    def write(folder):
        save(model.cpu(), folder, metadata=new_meta)
        plan.save(folder / "factorization")
        write_model_card(folder)

    replace_output_dir(args.out, write)
    if args.json:
        print_json({"out": str(args.out), **summary, "layers": plan.layers, "skipped": plan.skipped})
        return 0
    print(plan.table())
    tuned = (f" -> {after['accuracy']:.2f}% (after {plural(args.finetune_epochs, 'fine-tune epoch')})"
             if args.finetune_epochs else "")
    print(f"\n{args.method} factorization of {resolved.label}: accuracy {before['accuracy']:.2f}% -> "
          f"{factorized['accuracy']:.2f}% (factorized, BatchNorm statistics re-estimated on "
          f"{plural(min(BN_IMAGES, len(data.train)), 'training image')}){tuned}, full test split; "
          f"MACs {plan.macs_before / 1e6:.2f}M -> {plan.macs_after / 1e6:.2f}M")
    if not plan.layers:
        log("no layer was factorized: no rank keeping that energy lowers any layer's MACs; try a lower --energy")
    print(f"saved to {args.out}")
    return 0
