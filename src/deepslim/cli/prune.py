"""`deepslim prune`: prune a saved model (optionally fine-tune), evaluate it, save it elsewhere."""

from __future__ import annotations

import shutil
import time

from ..core import DeepslimError, log, resolve_device
from ..data import load_dataset
from ..export import save
from ..profiling.counting import count_ops
from ..prune import (
    ChannelPruning,
    KeepMasked,
    MagnitudePruning,
    NMSparsity,
    RandomPruning,
    adaptive_prune_,
    prune_,
)
from ..train import TrainConfig, Trainer, evaluate, recalibrate_batchnorm_
from .args import add_command, add_derived_output_args, check_output_dir, data_options, derived_metadata, print_json
from .recovery import add_distill_args, recovery_callbacks, teacher_copy
from .resolve import add_model_source_args, resolve_model

METHODS = ("channel", "adaptive", "magnitude", "random", "nm")


def add_parser(sub) -> None:
    p = add_command(sub, "prune", help="prune a saved model",
                    description="Prune a saved model: 'channel' removes channels for real (a smaller dense model, "
                                "faster); 'adaptive' also removes channels, with per-layer ratios chosen by measuring "
                                "whole pruned models step by step until --mac-ratio is met (NetAdapt-style); 'magnitude', 'random' and 'nm' zero weights (stored compactly, no speed-up "
                                "claimed). Optionally fine-tune, then evaluate on the full test split and save to --out.")
    add_model_source_args(p)
    p.add_argument("--method", choices=METHODS, default="channel", help="default channel")
    p.add_argument("--ratio", type=float, default=0.5, help="channel: fraction of channels removed, default 0.5")
    p.add_argument("--mac-ratio", type=float, default=0.5,
                   help="adaptive: fraction of the model's MACs to keep, default 0.5")
    p.add_argument("--step", type=float, default=0.05,
                   help="adaptive: MACs removed per step, as a fraction of the original, default 0.05")
    p.add_argument("--step-finetune-images", type=int, default=0,
                   help="adaptive: fine-tune the chosen model after every step on this many training images "
                        "(NetAdapt's short-term fine-tune; helps at small budgets), default 0")
    p.add_argument("--round-to", type=int, help="channel/adaptive: keep channel counts multiples of this (e.g. 8)")
    p.add_argument("--sparsity", type=float, default=0.5, help="magnitude/random: fraction of weights zeroed")
    p.add_argument("--importance", default="l2", help="channel: l1, l2, bn_scale, fpgm, random (default l2)")
    p.add_argument("--global-ranking", action="store_true", help="rank channels / weights across layers")
    p.add_argument("--n", type=int, default=2, help="nm: keep n of every m weights (default 2)")
    p.add_argument("--m", type=int, default=4, help="nm: group size (default 4)")
    p.add_argument("--finetune-epochs", type=int, default=0, help="fine-tune for this many epochs, default 0")
    p.add_argument("--lr", type=float, default=0.01, help="fine-tune learning rate (SGD, cosine), default 0.01")
    add_distill_args(p)
    add_derived_output_args(p, "pruned model")
    p.set_defaults(func=run)


def _config(args):
    if args.method == "adaptive":
        if not 0 < args.mac_ratio < 1:
            raise DeepslimError(f"--mac-ratio {args.mac_ratio} must lie in (0, 1)", hint="e.g. --mac-ratio 0.25")
        return ChannelPruning(ratio=0.0, importance=args.importance)  # per-layer ratios are found below
    if args.method == "channel":
        return ChannelPruning(ratio=args.ratio, importance=args.importance, global_ranking=args.global_ranking,
                              round_to=args.round_to)
    scope = "global" if args.global_ranking else "layer"
    if args.method == "magnitude":
        return MagnitudePruning(sparsity=args.sparsity, scope=scope)
    if args.method == "random":
        return RandomPruning(sparsity=args.sparsity, scope=scope)
    return NMSparsity(n=args.n, m=args.m)




def run(args) -> int:
    config = _config(args)
    resolved = resolve_model(args.model, args.model_dir)
    check_output_dir(args.out, resolved.artifact_dir, args.overwrite)
    meta = dict(resolved.model.deepslim_metadata or {}) if hasattr(resolved.model, "deepslim_metadata") else {}
    data_name = meta.get("dataset", {}).get("name")
    if not data_name:
        raise DeepslimError(f"{resolved.label} does not record its data set", hint="prune a model saved by deepslim train")
    device = resolve_device(args.device)
    data = load_dataset(data_name, **data_options(args))
    model = resolved.model.to(device)
    example = data.test.images[:1].to(device)
    before = evaluate(model, data.test, device=device, desc="test (before)")
    started = time.perf_counter()
    teacher = teacher_copy(args, model)
    sample = (data.train.images[:64].to(device), data.train.labels[:64].to(device))
    adaptive = None
    if args.method == "adaptive":
        macs = count_ops(model, (example,)).macs
        adaptive = adaptive_prune_(model, data.val, args.mac_ratio * macs, example, step=args.step,
                                   importance=args.importance, round_to=args.round_to,
                                   calibration_images=data.train.images[:2048].to(device), train_data=data.train,
                                   finetune_images=args.step_finetune_images)
        plan = adaptive.plan
    else:
        plan = prune_(model, config, example_inputs=example, data=sample)
    if plan.structured:
        recalibrate_batchnorm_(model, data.train.images[:2048].to(device))
    history = []
    if args.finetune_epochs:
        callbacks = ([] if plan.structured else [KeepMasked(plan.masks)]) + \
            recovery_callbacks(args, teacher, model, data, device)
        cfg = TrainConfig(epochs=args.finetune_epochs, lr=args.lr, schedule="cosine")
        history = Trainer(model, cfg, callbacks=callbacks, device=device).fit(data.train, val_data=data.val)
    after = evaluate(model, data.test, device=device, desc="test (after)")
    seconds = time.perf_counter() - started
    summary = {"method": args.method, "config": config.to_dict(), "finetune_epochs": args.finetune_epochs,
               **({"adaptive": adaptive.to_dict()} if adaptive else {}),
               "distilled": teacher is not None and args.finetune_epochs > 0,
               "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
               "params_before": plan.params_before, "params_after": plan.params_after,
               "macs_before": plan.macs_before, "macs_after": plan.macs_after, "seconds": round(seconds, 1)}
    new_meta = derived_metadata(meta, after, "pruning", {**summary, "source": resolved.label, "history": history})
    if args.out.exists() and args.overwrite:
        shutil.rmtree(args.out)
    save(model.cpu(), args.out, metadata=new_meta)
    plan.save(args.out / "pruning")
    if args.json:
        print_json({"out": str(args.out), **summary})
        return 0
    macs = f"{plan.macs_before / 1e6:.2f}M -> {plan.macs_after / 1e6:.2f}M" if plan.macs_before else "?"
    kind = "params" if plan.structured else "non-zero params"
    print(f"{args.method} pruning of {resolved.label}: accuracy {before['accuracy']:.2f}% -> {after['accuracy']:.2f}% "
          f"(full test), MACs {macs}, {kind} {plan.params_before:,} -> {plan.params_after:,}")
    if not plan.structured:
        log("unstructured sparsity shrinks the saved file but is not claimed to be faster on dense runtimes")
    print(f"saved to {args.out}")
    return 0
