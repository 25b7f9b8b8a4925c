"""LeNet-5 (LeCun et al., 1998), with ReLU and max-pooling as is common today."""

from __future__ import annotations

from torch import nn

from .common import check_positive
from .registry import register_model


def _pooled(size: int, kernel: int, padding: int) -> int:
    return (size + 2 * padding - kernel + 1) // 2


@register_model("lenet5", family="classic")
def lenet5(in_channels: int = 1, num_classes: int = 10, image_size: int = 28) -> nn.Module:
    """LeNet-5: two 5x5 convs and three fully connected layers (~61k params at 28x28)."""
    for k, v in (("in_channels", in_channels), ("num_classes", num_classes), ("image_size", image_size)):
        check_positive(k, v, "lenet5")
    side = _pooled(_pooled(image_size, 5, 2), 5, 0)
    if side < 1:
        raise ValueError(f"image_size {image_size} is too small for LeNet-5 (needs >= 10)")
    return nn.Sequential(
        nn.Conv2d(in_channels, 6, 5, padding=2), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Conv2d(6, 16, 5), nn.ReLU(inplace=True), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * side * side, 120), nn.ReLU(inplace=True),
        nn.Linear(120, 84), nn.ReLU(inplace=True),
        nn.Linear(84, num_classes),
    )
