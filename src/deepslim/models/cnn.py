"""A small VGG-style CNN with BatchNorm, the Fashion-MNIST workhorse."""

from __future__ import annotations

from torch import nn

from .common import check_positive, conv_bn_relu
from .registry import register_model


@register_model("fmnist-cnn", family="vgg")
def fmnist_cnn(in_channels: int = 1, num_classes: int = 10, widths: tuple = (32, 64, 128),
               convs_per_stage: int = 1, hidden: int = 256, dropout: float = 0.3, image_size: int = 28) -> nn.Module:
    """VGG-style: stages of 3x3 conv-BN-ReLU + 2x2 max-pool, then flatten -> FC -> FC."""
    for k, v in (("in_channels", in_channels), ("num_classes", num_classes), ("hidden", hidden),
                 ("convs_per_stage", convs_per_stage), ("image_size", image_size)):
        check_positive(k, v, "fmnist-cnn")
    layers: list[nn.Module] = []
    channels, side = in_channels, image_size
    for width in widths:
        check_positive("widths[i]", width, "fmnist-cnn")
        for _ in range(convs_per_stage):
            layers.append(conv_bn_relu(channels, width))
            channels = width
        layers.append(nn.MaxPool2d(2))
        side //= 2
    if side < 1:
        raise ValueError(f"image_size {image_size} is too small for {len(widths)} pooling stages")
    return nn.Sequential(
        *layers,
        nn.Flatten(),
        nn.Linear(channels * side * side, hidden), nn.ReLU(inplace=True), nn.Dropout(dropout),
        nn.Linear(hidden, num_classes),
    )
