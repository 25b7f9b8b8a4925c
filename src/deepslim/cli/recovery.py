"""`--distill` for the commands that fine-tune a compressed model (prune, factorize, quantize).

The teacher is the uncompressed input model: its soft outputs guide the recovery.
"""

from __future__ import annotations

import copy

from ..distill import KD, Distillation
from .options import fill_defaults, refuse_unless


def add_distill_args(p) -> None:
    d = KD()
    p.add_argument("--distill", action="store_true",
                   help="fine-tune with knowledge distillation from the uncompressed input model")
    p.add_argument("--kd-temperature", type=float, metavar="T",
                   help=f"with --distill: softmax temperature of both models' logits; default {d.temperature}")
    p.add_argument("--kd-alpha", type=float, metavar="A",
                   help=f"with --distill: weight of the teacher's loss (1 - A goes to the labels); default {d.alpha}")


def check_distill_args(args, trains: bool, needs: str) -> None:
    """Refuse --distill when nothing is trained (``needs`` names what would train) and the --kd-*
    options without --distill; then fill their defaults."""
    refuse_unless(args, "distill", trains, needs, f"distillation guides a fine-tune: add {needs} N")
    for dest in ("kd_temperature", "kd_alpha"):
        refuse_unless(args, dest, args.distill, "--distill", "it tunes the distillation: add --distill")
    d = KD()
    fill_defaults(args, {"kd_temperature": d.temperature, "kd_alpha": d.alpha})


def teacher_copy(args, model):
    """A frozen copy of the input model to distil from, or ``None`` without ``--distill``."""
    if not args.distill:
        return None
    KD(temperature=args.kd_temperature, alpha=args.kd_alpha)  # refuse bad settings before any work
    return copy.deepcopy(model).eval()


def recovery_callbacks(args, teacher, student, data, device) -> list:
    """The Distillation callback for a fine-tune, or nothing when there is no teacher."""
    if teacher is None:
        return []
    kd = KD(temperature=args.kd_temperature, alpha=args.kd_alpha)
    return [Distillation(student.to(device), teacher.to(device), kd, data.train.images[:2].to(device))]
