"""`deepslim factorize`: low-rank factorization of a saved model, optionally after force
regularization and followed by a fine-tune; evaluated and saved elsewhere."""

from __future__ import annotations

import shutil
import time

from ..core import DeepslimError, log, resolve_device
from ..data import load_dataset
from ..export import save
from ..lowrank import Factorization, ForceRegularization, factorize_
from ..lowrank.config import METHODS
from ..train import TrainConfig, Trainer, evaluate, recalibrate_batchnorm_
from .args import add_command, add_derived_output_args, check_output_dir, data_options, derived_metadata, print_json
from .recovery import add_distill_args, recovery_callbacks, teacher_copy
from .resolve import add_model_source_args, resolve_model


def add_parser(sub) -> None:
    p = add_command(sub, "factorize", help="low-rank factorization (SVD, spatial SVD, Tucker-2)",
                    description="Replace conv/linear layers by chains of smaller ones: 'svd' (linear: two linears; "
                                "conv: k x k with r filters then 1 x 1), 'spatial' (k x 1 then 1 x k), 'tucker' "
                                "(1 x 1, k x k core, 1 x 1). Ranks from --energy (kept squared singular values per "
                                "layer) or --mac-ratio (the whole model's MACs). Optionally train with force "
                                "regularization first (--force-reg), fine-tune after, evaluate on the full test split.")
    add_model_source_args(p)
    p.add_argument("--method", choices=METHODS, default="svd", help="default svd")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--energy", type=float, help="keep this fraction of each layer's energy, in (0, 1]")
    target.add_argument("--mac-ratio", type=float, help="the model's MACs must end at most this fraction, in (0, 1)")
    p.add_argument("--selection", choices=("energy", "sensitivity"), default="energy",
                   help="with --mac-ratio: the same kept energy everywhere (default), or per-layer ranks from a "
                        "validation sweep (least accuracy lost per MAC saved; slower)")
    p.add_argument("--layers", help="comma-separated layer names or regexes (default: every conv/linear but the head)")
    p.add_argument("--force-reg", type=float, default=0.0, metavar="LAMBDA",
                   help="train with force regularization of this strength first (e.g. 1e-3); needs --force-epochs")
    p.add_argument("--force-epochs", type=int, default=0, help="epochs of force-regularized training, default 0")
    p.add_argument("--force-form", choices=("degradation", "constant"), default="degradation",
                   help="force form (Wen et al. 2017), default degradation")
    p.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune for this many epochs after, default 0")
    p.add_argument("--lr", type=float, default=0.01, help="learning rate of both trainings (SGD, cosine), default 0.01")
    add_distill_args(p)
    add_derived_output_args(p, "factorized model")
    p.set_defaults(func=run)


def run(args) -> int:
    layers = [n.strip() for n in args.layers.split(",") if n.strip()] if args.layers else None
    config = Factorization(method=args.method, energy=args.energy, mac_ratio=args.mac_ratio,
                           selection=args.selection, layers=layers)
    if args.force_reg < 0 or args.force_epochs < 0 or args.finetune_epochs < 0:
        raise DeepslimError("--force-reg, --force-epochs and --finetune-epochs must be >= 0")
    if bool(args.force_reg) != bool(args.force_epochs):
        raise DeepslimError("--force-reg and --force-epochs go together",
                            hint="e.g. --force-reg 1e-3 --force-epochs 2")
    resolved = resolve_model(args.model, args.model_dir)
    check_output_dir(args.out, resolved.artifact_dir, args.overwrite)
    meta = dict(getattr(resolved.model, "deepslim_metadata", None) or {})
    data_name = meta.get("dataset", {}).get("name")
    if not data_name:
        raise DeepslimError(f"{resolved.label} does not record its data set",
                            hint="factorize a model saved by deepslim train")
    device = resolve_device(args.device)
    data = load_dataset(data_name, **data_options(args))
    model = resolved.model.to(device)
    example = data.test.images[:1].to(device)
    before = evaluate(model, data.test, device=device, desc="test (before)")
    teacher = teacher_copy(args, model)
    started = time.perf_counter()
    history = {}
    if args.force_epochs:
        force = ForceRegularization(model, strength=args.force_reg, form=args.force_form, layers=layers)
        cfg = TrainConfig(epochs=args.force_epochs, lr=args.lr, schedule="cosine")
        history["force"] = Trainer(model, cfg, callbacks=[force], device=device).fit(data.train, val_data=data.val)
    plan = factorize_(model, config, example, val_data=data.val)
    recalibrate_batchnorm_(model, data.train.images[:2048])
    factorized = evaluate(model, data.test, device=device, desc="test (factorized)")
    if args.finetune_epochs:
        cfg = TrainConfig(epochs=args.finetune_epochs, lr=args.lr, schedule="cosine")
        callbacks = recovery_callbacks(args, teacher, model, data, device)
        history["finetune"] = Trainer(model, cfg, callbacks=callbacks, device=device).fit(data.train, val_data=data.val)
    after = evaluate(model, data.test, device=device, desc="test (after)") if args.finetune_epochs else factorized
    summary = {"config": config.to_dict(), "force_reg": args.force_reg, "force_epochs": args.force_epochs,
               "finetune_epochs": args.finetune_epochs, "distilled": teacher is not None and args.finetune_epochs > 0,
               "accuracy_before": before["accuracy"],
               "accuracy_factorized": factorized["accuracy"], "accuracy_after": after["accuracy"],
               "macs_before": plan.macs_before, "macs_after": plan.macs_after, "params_before": plan.params_before,
               "params_after": plan.params_after, "seconds": round(time.perf_counter() - started, 1)}
    new_meta = derived_metadata(meta, after, "factorization", {**summary, "source": resolved.label,
                                                                "history": history})
    if args.out.exists() and args.overwrite:
        shutil.rmtree(args.out)
    save(model.cpu(), args.out, metadata=new_meta)
    plan.save(args.out / "factorization")
    if args.json:
        print_json({"out": str(args.out), **summary, "layers": plan.layers, "skipped": plan.skipped})
        return 0
    print(plan.table())
    print(f"\n{args.method} factorization of {resolved.label}: accuracy {before['accuracy']:.2f}% -> "
          f"{factorized['accuracy']:.2f}% (factorized) -> {after['accuracy']:.2f}% (after {args.finetune_epochs} "
          f"fine-tune epochs), full test split; MACs {plan.macs_before / 1e6:.2f}M -> {plan.macs_after / 1e6:.2f}M")
    if not plan.layers:
        log("no layer was factorized: no rank keeping that energy lowers any layer's MACs; try a lower --energy")
    print(f"saved to {args.out}")
    return 0
