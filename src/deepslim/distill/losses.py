"""The distillation losses, as plain functions of tensors."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def kd_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
            temperature: float = 4.0, alpha: float = 0.9, label_smoothing: float = 0.0) -> torch.Tensor:
    """alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, labels).

    The T^2 factor keeps the soft-target gradients on the scale of the hard-label ones
    (Hinton et al. 2015).

    Example:
        >>> s, t, y = torch.randn(4, 10), torch.randn(4, 10), torch.tensor([0, 1, 2, 3])
        >>> bool(torch.isclose(kd_loss(s, t, y, alpha=0.0), F.cross_entropy(s, y)))
        True
    """
    return alpha * soft_loss(student_logits, teacher_logits, temperature) + \
        (1 - alpha) * F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)


def soft_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """T^2 * KL(softmax(teacher / T) || softmax(student / T)), averaged over the batch."""
    log_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(log_student, log_teacher, reduction="batchmean", log_target=True) * temperature ** 2


def attention_map(features: torch.Tensor) -> torch.Tensor:
    """Spatial attention of a (N, C, H, W) map: mean of squares over channels, flattened, L2-normalised."""
    return F.normalize(features.pow(2).mean(1).flatten(1), dim=1)


def attention_loss(student_features: torch.Tensor, teacher_features: torch.Tensor) -> torch.Tensor:
    """Attention transfer: squared distance between normalised attention maps (resized to the teacher's)."""
    if student_features.shape[2:] != teacher_features.shape[2:]:
        student_features = F.interpolate(student_features, size=teacher_features.shape[2:], mode="bilinear",
                                         align_corners=False)
    return (attention_map(student_features) - attention_map(teacher_features)).pow(2).mean()
