"""`deepslim prune`: prune a saved model (optionally fine-tune), evaluate it, save it elsewhere."""

from __future__ import annotations

import time

from ..core import DeepslimError, log, resolve_device
from ..core.text import plural
from ..data import load_dataset
from ..export import save
from ..export.model_card import write_model_card
from ..profiling.counting import count_ops
from ..prune import (
    BlockDropping,
    ChannelPruning,
    KeepMasked,
    MagnitudePruning,
    NMSparsity,
    RandomPruning,
    adaptive_prune_,
    prune_,
)
from ..prune.budget import uniform_ratio_for_macs
from ..prune.config import IMPORTANCES
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
from .options import check_count, fill_defaults, given, refuse_inapplicable, refuse_model_args, refuse_unless
from .recovery import add_distill_args, check_distill_args, recovery_callbacks, teacher_copy
from .resolve import add_model_source_args, resolve_model

METHODS = ("channel", "adaptive", "blocks", "magnitude", "random", "nm")
# The options each method uses; any other of them the user gives is refused, naming what applies.
APPLIES = {
    "channel": ("ratio", "mac_ratio", "importance", "global_ranking", "round_to"),
    "adaptive": ("mac_ratio", "step", "step_finetune_images", "importance", "round_to"),
    "magnitude": ("sparsity", "global_ranking"),
    "random": ("sparsity", "global_ranking"),
    "blocks": ("blocks", "block_names"),
    "nm": ("n", "m"),
}
DEFAULTS = {"ratio": 0.5, "mac_ratio": 0.5, "step": 0.05, "step_finetune_images": 0, "sparsity": 0.5,
            "importance": "l2", "n": 2, "m": 4, "finetune_epochs": 0, "lr": 0.01}
BN_IMAGES = 2048  # training images BatchNorm statistics are re-estimated on after channels are removed
_DENSE = "zeroed weights keep every multiply-add on dense runtimes"
_CHANNELS = "channel pruning removes channels: --ratio R (fraction removed) or --mac-ratio F (fraction of MACs kept)"
HINTS = {
    **{("mac_ratio", m): f"{_DENSE}: use --sparsity S (fraction of weights zeroed), or --method channel --mac-ratio F"
       for m in ("magnitude", "random")},
    ("mac_ratio", "nm"): f"{_DENSE}: use --n N --m M (keep N of every M weights), or --method channel --mac-ratio F",
    **{("ratio", m): "--ratio is the fraction of channels removed; the fraction of weights zeroed is --sparsity S"
       for m in ("magnitude", "random")},
    ("ratio", "nm"): "N:M sparsity is set by --n N --m M (keep N of every M weights)",
    ("sparsity", "nm"): "N:M sparsity is set by --n N --m M: its sparsity is 1 - N/M (--n 2 --m 4 zeroes half)",
    ("ratio", "adaptive"): "adaptive chooses each layer's ratio itself: give its target with --mac-ratio F",
    ("sparsity", "channel"): _CHANNELS,
    ("sparsity", "adaptive"): "adaptive pruning removes channels until --mac-ratio F of the MACs is left",
    **{(k, "blocks"): "--method blocks removes whole residual blocks: give how many with --blocks K, or which "
                      "with --block-names" for k in ("ratio", "mac_ratio", "sparsity")},
}


def add_parser(sub) -> None:
    p = add_command(sub, "prune", help="prune a saved model",
                    description="Prune a saved model: 'channel' removes channels for real (a smaller dense model, "
                                "faster), uniformly by --ratio or to --mac-ratio of the MACs; 'adaptive' also removes "
                                "channels, with per-layer ratios chosen by measuring whole pruned models step by step "
                                "until --mac-ratio is met (NetAdapt-style); 'blocks' removes whole residual blocks "
                                "(the --blocks K whose removal raises the loss least, or --block-names); "
                                "'magnitude' and 'random' zero --sparsity "
                                "of the weights and 'nm' keeps --n of every --m (stored compactly, no speed-up "
                                "claimed). Options that do not apply to the --method are refused. Optionally "
                                "fine-tune, then evaluate on the full test split and save to --out.")
    add_model_source_args(p)
    d = DEFAULTS
    p.add_argument("--method", choices=METHODS, default="channel", help="pruning method; default channel")
    p.add_argument("--ratio", type=float, metavar="R",
                   help=f"channel: fraction of every layer's channels removed; default {d['ratio']} "
                        "unless --mac-ratio is given")
    p.add_argument("--mac-ratio", type=float, metavar="F",
                   help="channel, adaptive: fraction of the model's MACs to keep, e.g. 0.5 keeps half "
                        f"(channel: the uniform ratio that fits it is searched); adaptive default {d['mac_ratio']}")
    p.add_argument("--step", type=float, metavar="F",
                   help=f"adaptive: MACs removed per step, as a fraction of the original; default {d['step']}")
    p.add_argument("--step-finetune-images", type=int, metavar="N",
                   help="adaptive: fine-tune the chosen model after every step on N training images "
                        "(NetAdapt's short-term fine-tune; helps at small budgets); default 0")
    p.add_argument("--round-to", type=int, metavar="K",
                   help="channel, adaptive: keep channel counts multiples of K (e.g. 8); default 1")
    p.add_argument("--sparsity", type=float, metavar="S",
                   help=f"magnitude, random: fraction of the weights zeroed; default {d['sparsity']}")
    p.add_argument("--importance", choices=IMPORTANCES,
                   help=f"channel, adaptive: how channels are ranked; default {d['importance']}")
    p.add_argument("--global-ranking", action="store_true",
                   help="channel, magnitude, random: rank channels / weights across layers, not per layer")
    p.add_argument("--blocks", type=int, metavar="K",
                   help="blocks: how many residual blocks to remove, each the one whose removal raises the loss on "
                        "64 training images least; default 1")
    p.add_argument("--block-names", metavar="A,B",
                   help="blocks: the residual blocks to remove, by module name (e.g. stages.0.0); the error for a "
                        "wrong name lists the candidates")
    p.add_argument("--n", type=int, metavar="N", help=f"nm: keep N of every M weights; default {d['n']}")
    p.add_argument("--m", type=int, metavar="M", help=f"nm: group size M; default {d['m']}")
    p.add_argument("--finetune-epochs", type=int, metavar="N", help="fine-tune for N epochs after pruning; default 0")
    p.add_argument("--lr", type=float, help=f"with --finetune-epochs: learning rate (SGD, cosine); default {d['lr']}")
    add_distill_args(p)
    add_derived_output_args(p, "pruned model")
    p.set_defaults(func=run)


def check_args(args) -> None:
    """Refuse options that would not act, then fill the defaults of those left unset."""
    refuse_model_args(args)
    refuse_inapplicable(args, args.method, APPLIES, HINTS)
    if args.method == "channel" and given(args, "ratio") and given(args, "mac_ratio"):
        raise DeepslimError("--ratio and --mac-ratio both set the amount of channel pruning",
                            hint="give one: --ratio R (fraction of channels removed) or --mac-ratio F "
                                 "(fraction of MACs kept)")
    if args.method == "blocks" and given(args, "blocks") and given(args, "block_names"):
        raise DeepslimError("--blocks and --block-names both choose the blocks to remove",
                            hint="give one: --blocks K (chosen by loss) or --block-names A,B")
    if args.method == "adaptive" and args.importance == "taylor":  # its trial prunes get no batch to take gradients on
        raise DeepslimError("--importance taylor does not apply to --method adaptive",
                            hint="taylor needs gradients, which adaptive's trials do not compute: use l1, l2, "
                                 "bn_scale, fpgm or random (or --method channel)")
    for dest in ("finetune_epochs", "step_finetune_images"):
        check_count(args, dest)
    if given(args, "subset"):
        check_count(args, "subset", 2)
    trains = bool(args.finetune_epochs)
    refuse_unless(args, "lr", trains, "--finetune-epochs",
                  "it is the fine-tune's learning rate: add --finetune-epochs N")
    check_distill_args(args, trains, "--finetune-epochs")
    by_macs = args.method == "adaptive" or given(args, "mac_ratio")  # then the ratio stays None: it is searched
    fill_defaults(args, {k: v for k, v in DEFAULTS.items() if not (k == "ratio" and by_macs)})
    if args.mac_ratio is not None and not 0 < args.mac_ratio < 1:
        raise DeepslimError(f"--mac-ratio {args.mac_ratio} must lie in (0, 1): it is the fraction of MACs kept",
                            hint="e.g. --mac-ratio 0.25 keeps a quarter")


def _config(args):
    if args.method == "blocks":
        if args.block_names:
            return BlockDropping(names=[n.strip() for n in args.block_names.split(",") if n.strip()] or None)
        return BlockDropping(blocks=args.blocks if args.blocks is not None else 1)
    if args.method == "adaptive":
        return ChannelPruning(ratio=0.0, importance=args.importance)  # per-layer ratios are found below
    if args.method == "channel":
        return ChannelPruning(ratio=args.ratio if args.ratio is not None else 0.0, importance=args.importance,
                              global_ranking=args.global_ranking, round_to=args.round_to)
    scope = "global" if args.global_ranking else "layer"
    if args.method == "magnitude":
        return MagnitudePruning(sparsity=args.sparsity, scope=scope)
    if args.method == "random":
        return RandomPruning(sparsity=args.sparsity, scope=scope)
    return NMSparsity(n=args.n, m=args.m)


def run(args) -> int:
    check_args(args)
    config = _config(args)
    resolved = resolve_model(args.model, args.model_dir)
    check_output_dir(args.out, resolved.artifact_dir, args.overwrite)
    meta = dict(resolved.model.deepslim_metadata or {}) if hasattr(resolved.model, "deepslim_metadata") else {}
    data_name = meta.get("dataset", {}).get("name")
    if not data_name:
        raise DeepslimError(f"{resolved.label} does not record its data set", hint="prune a model saved by deepslim train")
    args.interrupt_hint = "nothing was written to --out; rerun the same command" + \
        ("" if args.subset or not args.finetune_epochs else " (--subset N fine-tunes on fewer images)")
    device = resolve_device(args.device)
    data = load_dataset(data_name, subset=args.subset, **data_options(args))
    log(describe_data(data, args.subset, "calibration and fine-tuning"))
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
                                   calibration_images=data.train.images[:BN_IMAGES].to(device), train_data=data.train,
                                   finetune_images=args.step_finetune_images)
        plan = adaptive.plan
    else:
        if args.method == "channel" and args.ratio is None:
            config = _ratio_for_mac_ratio(model, config, args.mac_ratio, example, sample)
        plan = prune_(model, config, example_inputs=example, data=sample)
        if args.method == "channel" and args.ratio is None:
            _report_mac_ratio(plan, config, args.mac_ratio)
    if plan.structured:
        log(f"re-estimating BatchNorm statistics on {training_images(data, args.subset, BN_IMAGES)}: "
            "removing channels changes what every later layer sees")
        recalibrate_batchnorm_(model, data.train.images[:BN_IMAGES].to(device))
    history = []
    if args.finetune_epochs:
        log(f"fine-tuning {plural(args.finetune_epochs, 'epoch')} on {training_images(data, args.subset)}"
            + (" with distillation from the input model" if teacher is not None else ""))
        callbacks = ([] if plan.structured else [KeepMasked(plan.masks)]) + \
            recovery_callbacks(args, teacher, model, data, device)
        cfg = TrainConfig(epochs=args.finetune_epochs, lr=args.lr, schedule="cosine")
        history = Trainer(model, cfg, callbacks=callbacks, device=device).fit(data.train, val_data=data.val)
    after = evaluate(model, data.test, device=device, desc="test (after)")
    seconds = time.perf_counter() - started
    summary = {"method": args.method, "config": config.to_dict(), "finetune_epochs": args.finetune_epochs,
               **({"mac_ratio": args.mac_ratio} if args.ratio is None else {}),
               **({"adaptive": adaptive.to_dict()} if adaptive else {}),
               "distilled": teacher is not None and args.finetune_epochs > 0,
               "accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
               "params_before": plan.params_before, "params_after": plan.params_after,
               "macs_before": plan.macs_before, "macs_after": plan.macs_after, "seconds": round(seconds, 1),
               "data": data_record(data, args.subset), "batchnorm_reestimated": plan.structured,
               "command": command_line(args)}
    new_meta = derived_metadata(meta, after, "pruning", {**summary, "source": resolved.label, "history": history})

    def write(folder):
        save(model.cpu(), folder, metadata=new_meta)
        plan.save(folder / "pruning")
        write_model_card(folder)

    replace_output_dir(args.out, write)
    if args.json:
        print_json({"out": str(args.out), **summary})
        return 0
    macs = (f"{plan.macs_before / 1e6:.2f}M -> {plan.macs_after / 1e6:.2f}M "
            f"({plan.macs_after / plan.macs_before:.1%} kept)") if plan.macs_before else "?"
    kind = "params" if plan.structured else "non-zero params"
    print(f"{args.method} pruning of {resolved.label}: accuracy {before['accuracy']:.2f}% -> {after['accuracy']:.2f}% "
          f"(full test), MACs {macs}, {kind} {plan.params_before:,} -> {plan.params_after:,}")
    if not plan.structured:
        log("unstructured sparsity shrinks the saved file but is not claimed to be faster on dense runtimes")
    print(f"saved to {args.out}")
    return 0


def _ratio_for_mac_ratio(model, config: ChannelPruning, mac_ratio: float, example, sample) -> ChannelPruning:
    """``config`` with the smallest uniform ratio whose pruned model keeps at most ``mac_ratio`` of the MACs."""
    macs = count_ops(model, (example,)).macs
    ratio = uniform_ratio_for_macs(model, mac_ratio * macs, example, config, data=sample)
    if ratio is None:
        raise DeepslimError(f"--mac-ratio {mac_ratio}: even removing 95% of every layer's channels keeps more of "
                            "the MACs", hint="raise --mac-ratio, or drop --round-to")
    return ChannelPruning(ratio=ratio, importance=config.importance, global_ranking=config.global_ranking,
                          round_to=config.round_to)


def _report_mac_ratio(plan, config: ChannelPruning, mac_ratio: float) -> None:
    kept = plan.macs_after / plan.macs_before
    log(f"channel pruning: removing {config.ratio:.1%} of every layer's channels keeps {kept:.1%} of the MACs "
        f"(--mac-ratio {mac_ratio:g})")
    if kept < mac_ratio - 0.05:  # a uniform ratio moves every layer's integer channel count at once
        steps = f" (multiples of --round-to {config.round_to})" if config.round_to else ""
        log(f"warning: channel counts change in steps{steps}: the closest uniform ratio at or below "
            f"{mac_ratio:g} of the MACs keeps {kept:.1%}; --method adaptive sets per-layer ratios")
