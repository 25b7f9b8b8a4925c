"""`deepslim train`: train a zoo model and save it as an artifact with a model card."""

from __future__ import annotations

import shlex
import shutil
import sys
import time
from pathlib import Path

import torch

from ..core import DeepslimError, log, resolve_device, seed_everything
from ..core.text import plural
from ..data import load_dataset
from ..export import is_artifact, save
from ..export.model_card import write_model_card
from ..models import create_model
from ..train import TrainConfig, Trainer, distributed, evaluate
from ..train.checkpoint import load_checkpoint
from .args import add_command, add_data_args, data_options, parse_kwargs, print_json

CHECKPOINT = Path("checkpoint") / "last.pt"


def add_parser(sub) -> None:
    p = add_command(sub, "train", help="train a model from the zoo",
                       description="Train a zoo model, checkpointing every epoch, then evaluate it on the full "
                                   "test split and save it (weights, architecture, metadata, model card) in --out.")
    p.add_argument("--model", required=True, help="model name (see `deepslim zoo`)")
    add_training_args(p)
    p.add_argument("--nproc", type=int, metavar="N",
                   help="train on N processes with DDP (gloo on CPU, NCCL on GPU, at most one per core or GPU); "
                        "--batch-size stays the global batch, split evenly over them")
    p.set_defaults(func=run)


def add_training_args(p) -> None:
    """Options shared by `train` and `distill`: model args, data, output, the training config."""
    d = TrainConfig()
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="model option, repeatable, e.g. --model-arg widths=32,64,128")
    add_data_args(p, required=True)
    p.add_argument("--out", required=True, type=Path, help="output folder for the trained model")
    p.add_argument("--epochs", type=int, default=d.epochs, help=f"training epochs, default {d.epochs}")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"training batch size, default {d.batch_size}")
    p.add_argument("--optimizer", choices=("sgd", "adamw"), default=d.optimizer,
                   help=f"sgd (momentum, Nesterov) or adamw; default {d.optimizer}")
    p.add_argument("--lr", type=float, default=None, help="peak learning rate (default 0.1 for sgd, 0.001 for adamw)")
    p.add_argument("--weight-decay", type=float, default=None,
                   help="weight decay (not on biases and norms); default 5e-4 for sgd, 0.05 for adamw")
    p.add_argument("--schedule", choices=("cosine", "onecycle", "constant"), default=d.schedule,
                   help=f"learning-rate schedule, default {d.schedule}")
    p.add_argument("--warmup-epochs", type=float, default=d.warmup_epochs,
                   help=f"epochs of linear learning-rate warm-up before the schedule (may be fractional); "
                        f"default {d.warmup_epochs:g}")
    p.add_argument("--label-smoothing", type=float, default=d.label_smoothing,
                   help=f"share of each label's probability spread over the other classes; "
                        f"default {d.label_smoothing:g}")
    p.add_argument("--no-augment", action="store_true", help="turn off random flip and crop")
    p.add_argument("--subset", type=int, help="train on only this many images (the test split stays whole)")
    p.add_argument("--seed", type=int, default=d.seed,
                   help=f"seed of the data split and the training; default {d.seed}")
    p.add_argument("--device", default="auto", help="auto (CUDA when present), cpu or cuda")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in --out")
    p.add_argument("--json", action="store_true", help="print the final metrics as JSON")


def _config(args) -> TrainConfig:
    adamw = args.optimizer == "adamw"
    lr = args.lr if args.lr is not None else (1e-3 if adamw else 0.1)
    wd = args.weight_decay if args.weight_decay is not None else (0.05 if adamw else 5e-4)
    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=lr,
                       weight_decay=wd, schedule=args.schedule, warmup_epochs=args.warmup_epochs,
                       label_smoothing=args.label_smoothing, augment=not args.no_augment, seed=args.seed)


def _prepare_out(out: Path, resume: bool, overwrite: bool) -> None:
    if out.exists() and not out.is_dir():
        raise DeepslimError(f"--out {out} exists and is not a folder", hint="choose another --out")
    has_checkpoint = (out / CHECKPOINT).is_file()
    if resume:
        if is_artifact(out):
            raise DeepslimError(f"the run in {out} already finished; nothing to resume",
                                hint="use --overwrite to train again")
        if not has_checkpoint:
            raise DeepslimError(f"nothing to resume in {out}: no {CHECKPOINT}", hint="drop --resume to start a run")
        return
    busy = out.is_dir() and any(out.iterdir())
    if busy and not overwrite:
        what = "a finished run" if is_artifact(out) else ("an interrupted run" if has_checkpoint else "files")
        hint = "use --resume to continue it, or " if has_checkpoint and not is_artifact(out) else ""
        raise DeepslimError(f"--out {out} already holds {what}", hint=hint + "use --overwrite to replace it, "
                            "or choose another folder")
    if busy and overwrite:
        if not (is_artifact(out) or has_checkpoint):
            raise DeepslimError(f"--out {out} holds files that are not a deepslim run; refusing to delete them",
                                hint="choose another folder")
        shutil.rmtree(out)


def _interrupt_hint(checkpoint: Path, saved: int, epochs: int) -> str:
    """After Ctrl-C during training: what is on disk and how to go on from it.

    Example:
        >>> _interrupt_hint(Path("x/last.pt"), 3, 20)
        '3 epochs of 20 are saved in x/last.pt; rerun the same command with --resume to continue from epoch 4'
    """
    if saved <= 0:
        return "no epoch had finished, nothing was saved; rerun the same command to start again"
    if saved >= epochs:
        return (f"training finished ({plural(epochs, 'epoch')}, in {checkpoint}) but the model was not saved; "
                "rerun the same command with --resume to evaluate and save it")
    return (f"{plural(saved, 'epoch')} of {epochs} {'is' if saved == 1 else 'are'} saved in {checkpoint}; "
            f"rerun the same command with --resume to continue from epoch {saved + 1}")


def _remove_if_empty(folder: Path) -> None:
    """Drop the checkpoint folder of a finished run; rmdir leaves a folder that still holds anything."""
    try:
        folder.rmdir()
    except OSError:
        pass


def run(args) -> int:
    return run_training(args, args.model)


def _launch(args, model_name: str, command_name: str, nproc: int, device, out: Path) -> int:
    """Run ``run_training`` on ``nproc`` ranks; after Ctrl-C, say what the checkpoint holds."""
    log(f"starting {nproc} training processes ({'NCCL' if device.type == 'cuda' else 'gloo'}, "
        f"{args.batch_size // nproc} of each batch of {args.batch_size} per process)")
    try:
        return distributed.launch(_on_rank, nproc, args, model_name, command_name, device=device)
    except KeyboardInterrupt:
        ckpt = out / CHECKPOINT
        saved = int(load_checkpoint(ckpt)["epochs_done"]) if ckpt.is_file() else 0
        args.interrupt_hint = _interrupt_hint(ckpt, saved, args.epochs)
        raise


def _on_rank(args, model_name: str, command_name: str) -> int:
    """One rank of ``--nproc``: the same training, on this rank's device (``cuda:<rank>`` on GPUs)."""
    args.device = str(distributed.rank_device(resolve_device(args.device)))
    return run_training(args, model_name, command_name=command_name)


def run_training(args, model_name: str, *, callbacks_for=None, extra_meta: dict | None = None,
                 command_name: str = "train") -> int:
    """Train ``model_name`` as ``args`` say, evaluate, save with metadata and a model card.

    ``callbacks_for(model, data, device)`` returns extra training callbacks (distillation).
    """
    out: Path = args.out
    # Until training starts, Ctrl-C leaves nothing new behind (a resumed run keeps its checkpoint).
    args.interrupt_hint = None if args.resume else "nothing was saved; rerun the same command to start again"
    config = _config(args)
    device = resolve_device(args.device)
    # --nproc N > 1: this process checks everything and prepares --out, then runs this function again on
    # N ranks (train.distributed), where rank 0 saves. Without --nproc (or with 1) none of this runs.
    nproc = getattr(args, "nproc", None)
    launcher = nproc not in (None, 1) and distributed.world_size() == 1
    if launcher:
        distributed.check_nproc(nproc, device, config.batch_size)
        if callbacks_for is not None:
            raise DeepslimError(f"`deepslim {command_name}` runs in one process", hint="drop --nproc")
    data = load_dataset(args.data, subset=args.subset, seed=args.seed, **data_options(args))
    kwargs = parse_kwargs(args.model_arg)
    kwargs.setdefault("in_channels", data.input_shape[0])
    kwargs.setdefault("num_classes", data.num_classes)
    seed_everything(args.seed)  # before the model exists: --seed fixes the initial weights too, not only the batches
    model = create_model(model_name, **kwargs)
    callbacks = callbacks_for(model, data, device) if callbacks_for else []  # may refuse: before --out is touched
    if distributed.world_size() == 1:  # the ranks find --out prepared by the launcher
        _prepare_out(out, args.resume, args.overwrite)
        out.mkdir(parents=True, exist_ok=True)
    if launcher:
        return _launch(args, model_name, command_name, nproc, device, out)
    log(f"training {model_name} on {args.data} ({len(data.train)} train / {len(data.val)} val images) "
        f"for {plural(config.epochs, 'epoch')} on {device}")
    started = time.time()
    trainer = Trainer(model, config, device=device, callbacks=callbacks)
    try:
        history = trainer.fit(data.train, val_data=data.val, checkpoint_path=out / CHECKPOINT, resume=args.resume)
        if not distributed.is_main():  # rank 0 alone evaluates and writes the artifact
            return 0
        test = evaluate(model, data.test, device=device, desc="test")
    except KeyboardInterrupt:
        if trainer.epochs_saved or not args.resume:  # else: stopped before the checkpoint was read; it is still there
            args.interrupt_hint = _interrupt_hint(out / CHECKPOINT, trainer.epochs_saved, config.epochs)
        raise  # cli.main prints "error: interrupted — <interrupt_hint>" and exits with 130
    train_seconds = sum(h["seconds"] for h in history)
    metrics = {"test_accuracy": test["accuracy"], "test_loss": test["loss"], "test_images": test["n"]}
    if history and "val_accuracy" in history[-1]:
        metrics["val_accuracy"] = history[-1]["val_accuracy"]
    command = "deepslim " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == [command_name] else None
    meta = {"model": model_name, "model_kwargs": kwargs, "dataset": data.describe(), "metrics": metrics,
            "input_shape": [1, *data.input_shape],
            "training": {"config": config.to_dict(), "command": command, "device": str(device),
                         # a bit-for-bit rerun needs the same thread count and torch build (in "versions")
                         "threads": torch.get_num_threads(),
                         **({"processes": distributed.world_size()} if distributed.world_size() > 1 else {}),
                         "train_seconds": round(train_seconds, 1),
                         "wall_seconds_this_session": round(time.time() - started, 1), "history": history},
            **(extra_meta or {})}
    save(model.cpu(), out, metadata=meta, overwrite=True)
    write_model_card(out)
    (out / CHECKPOINT).unlink(missing_ok=True)
    _remove_if_empty(out / CHECKPOINT.parent)
    if args.json:
        print_json({"out": str(out), **metrics})
    else:
        print(f"accuracy: {metrics['test_accuracy']:.2f}% on {test['n']} test images; saved to {out}")
    return 0
