"""`deepslim distill`: train a zoo student with knowledge distillation from a saved teacher."""

from __future__ import annotations

from pathlib import Path

from ..core import DeepslimError
from ..distill import KD, Distillation
from ..export import list_pretrained
from .options import add_alias, fill_defaults, refuse_unless
from .resolve import resolve_model
from .train import add_training_args, run_training


def add_parser(sub) -> None:
    from .args import add_command

    d = KD()
    p = add_command(sub, "distill", help="train a student with knowledge distillation",
                    description="Train a zoo model (the student) against a saved teacher: T^2-scaled KL on "
                                "softened logits blended with cross-entropy (Hinton et al. 2015), optionally "
                                "feature hints (FitNets) or attention transfer. Saved like `deepslim train`.")
    p.add_argument("--teacher", required=True, help="teacher: a saved model folder or a shipped baseline name")
    p.add_argument("--student", required=True, help="student model name (see `deepslim zoo`)")
    # --kd-temperature / --kd-alpha, as in prune, factorize and quantize; the old names still work.
    temperature = p.add_argument("--kd-temperature", type=float, default=d.temperature, metavar="T",
                                 help=f"softmax temperature of both models' logits; default {d.temperature}")
    add_alias(p, "--temperature", temperature)
    alpha = p.add_argument("--kd-alpha", type=float, default=d.alpha, metavar="A",
                           help=f"weight of the soft (teacher) loss; 1 - A goes to the labels; default {d.alpha}")
    add_alias(p, "--alpha", alpha)
    p.add_argument("--hint", action="append", metavar="STUDENT_LAYER=TEACHER_LAYER",
                   help="feature hint, repeatable, e.g. --hint features.3=stages.1")
    p.add_argument("--hint-loss", choices=("mse", "attention"),
                   help=f"with --hint: mse through a learned adapter (FitNets) or attention transfer; "
                        f"default {d.hint_loss}")
    p.add_argument("--hint-weight", type=float,
                   help=f"with --hint: weight of the feature-hint loss; default {d.hint_weight}")
    add_training_args(p)
    p.set_defaults(func=run)


def _hints(items) -> dict:
    hints = {}
    for item in items or []:
        student, sep, teacher = item.partition("=")
        if not sep or not student.strip() or not teacher.strip():
            raise DeepslimError(f"--hint '{item}' is not STUDENT_LAYER=TEACHER_LAYER", hint="e.g. --hint 3=stages.1")
        hints[student.strip()] = teacher.strip()
    return hints


def _teacher(text: str):
    if Path(text).is_dir():
        return resolve_model(None, Path(text))
    if text in list_pretrained():
        return resolve_model(text, None)
    raise DeepslimError(f"--teacher '{text}' is neither a saved model folder nor a shipped baseline",
                        hint=f"shipped baselines: {', '.join(list_pretrained())}; or train one with `deepslim train`")


def run(args) -> int:
    d = KD()
    for dest in ("hint_loss", "hint_weight"):
        refuse_unless(args, dest, bool(args.hint), "--hint", "add --hint STUDENT_LAYER=TEACHER_LAYER")
    fill_defaults(args, {"hint_loss": d.hint_loss, "hint_weight": d.hint_weight})
    kd = KD(temperature=args.kd_temperature, alpha=args.kd_alpha, hints=_hints(args.hint), hint_loss=args.hint_loss,
            hint_weight=args.hint_weight)
    teacher = _teacher(args.teacher)
    teacher_data = (getattr(teacher.model, "deepslim_metadata", None) or {}).get("dataset", {}).get("name")
    if teacher_data and teacher_data != args.data:
        raise DeepslimError(f"the teacher was trained on {teacher_data}, not {args.data}",
                            hint=f"use --data {teacher_data}")

    def callbacks_for(student, data, device):
        return [Distillation(student.to(device), teacher.model.to(device), kd, data.train.images[:2].to(device))]

    return run_training(args, args.student, callbacks_for=callbacks_for, command_name="distill",
                        extra_meta={"distillation": {"teacher": teacher.label, "kd": kd.to_dict()}})
