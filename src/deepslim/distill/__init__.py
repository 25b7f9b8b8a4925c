"""Knowledge distillation: logits (Hinton et al. 2015), hints (FitNets), attention transfer."""

from .api import distill
from .callback import Distillation, make_adapter
from .config import KD
from .losses import attention_loss, kd_loss, soft_loss

__all__ = ["KD", "Distillation", "attention_loss", "distill", "kd_loss", "make_adapter", "soft_loss"]
