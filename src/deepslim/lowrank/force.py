"""Force regularization (Wen et al., ICCV 2017): pull each layer's filters toward each other
during training so that the same layers factor at a much lower rank afterwards.

Each filter ``w_i`` (a row of the layer's weight, flattened) is normalised to ``u_i``. The
other filters exert attractive forces on it:

- ``"degradation"`` (the paper's default): ``f_ji = u_j - u_i``, a force that fades as the
  filters meet, so they coordinate without collapsing onto one another;
- ``"constant"``: the unit vector ``(u_j - u_i) / ||u_j - u_i||``.

The summed force is averaged over the other filters (so ``strength`` means the same for
narrow and wide layers), its radial component along ``u_i`` is removed, and the result,
scaled by ``||w_i||``, is subtracted from the gradient: the update gains
``lr * strength * ||w_i|| * F_i``. Removing the radial part is our choice: without it the
degradation force on near-orthogonal filters points mostly at the origin and acts as very
strong weight decay, which in BatchNorm networks only inflates the effective learning rate
(we measured it wrecking accuracy long before ranks fell). Only directions are pulled
together, which is what the rank depends on; norms are left to the loss and weight decay.
"""

from __future__ import annotations

import torch
from torch import nn

from ..core import DeepslimError
from ..prune.select import select_layers
from ..train.callbacks import Callback
from .decompose import CONVS

FORMS = ("degradation", "constant")


@torch.no_grad()
def filter_force(weight: torch.Tensor, form: str = "degradation") -> torch.Tensor:
    """The average attractive force on every filter of ``weight`` (same shape as ``weight``)."""
    w = weight.reshape(weight.shape[0], -1)
    n = w.shape[0]
    if n < 2:
        return torch.zeros_like(weight)
    norms = w.norm(dim=1, keepdim=True).clamp_min(1e-12)
    u = w / norms
    if form == "degradation":
        force = u.sum(0, keepdim=True) - n * u                     # sum_j (u_j - u_i)
    else:
        diff = u.unsqueeze(0) - u.unsqueeze(1)                      # [i, j] = u_j - u_i
        dist = diff.norm(dim=2, keepdim=True)
        force = (diff / dist.clamp_min(1e-12) * (dist > 1e-12)).sum(1)
    force = force - (force * u).sum(1, keepdim=True) * u          # tangential part only
    return (norms * force / (n - 1)).reshape(weight.shape)


class ForceRegularization(Callback):
    """Training callback applying force regularization to conv/linear filters.

    Example:
        >>> import deepslim
        >>> model = deepslim.create_model("lenet5")
        >>> callback = ForceRegularization(model, strength=1e-3)
        >>> len(callback.layers) > 0
        True
    """

    def __init__(self, model: nn.Module, strength: float = 1e-3, form: str = "degradation",
                 layers: list[str] | None = None, skip_head: bool = True):
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or strength < 0:
            raise DeepslimError(f"force strength {strength!r} must be a number >= 0", hint="e.g. 1e-3")
        if form not in FORMS:
            raise DeepslimError(f"force form {form!r} is not known", hint=f"allowed: {', '.join(FORMS)}")
        mapping = {name: True for name in layers} if layers else None
        chosen = select_layers(model, mapping=mapping, default=None if layers else True, skip_head=skip_head)
        modules = dict(model.named_modules())
        self.layers = {name: modules[name] for name in chosen
                       if not (isinstance(modules[name], CONVS) and modules[name].groups != 1)}
        self.strength = float(strength)
        self.form = form

    def after_backward(self, trainer) -> None:
        if self.strength == 0:
            return
        for layer in self.layers.values():
            weight = layer.weight
            if weight.grad is None:
                continue
            weight.grad.sub_(self.strength * filter_force(weight, self.form))


def filter_rank(layer: nn.Module, energy: float = 0.9) -> int:
    """Rank needed to keep ``energy`` of the squared singular values of the layer's filter matrix.

    Example:
        >>> layer = nn.Linear(8, 4)
        >>> 1 <= filter_rank(layer) <= 4
        True
    """
    s = torch.linalg.svdvals(layer.weight.detach().double().reshape(layer.weight.shape[0], -1))
    kept = torch.cumsum(s ** 2, 0) / (s ** 2).sum().clamp_min(1e-30)
    wanted = torch.tensor(energy - 1e-12, dtype=kept.dtype, device=kept.device)  # searchsorted wants one device
    return min(int(torch.searchsorted(kept, wanted)) + 1, len(s))
