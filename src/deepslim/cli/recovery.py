"""`--distill` for the commands that fine-tune a compressed model (prune, factorize, quantize).

The teacher is the uncompressed input model: its soft outputs guide the recovery.
"""

from __future__ import annotations

import copy

from ..distill import KD, Distillation


def add_distill_args(p) -> None:
    d = KD()
    p.add_argument("--distill", action="store_true",
                   help="fine-tune with knowledge distillation from the uncompressed input model")
    p.add_argument("--kd-temperature", type=float, default=d.temperature, help=f"default {d.temperature}")
    p.add_argument("--kd-alpha", type=float, default=d.alpha, help=f"weight of the teacher's loss, default {d.alpha}")


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
