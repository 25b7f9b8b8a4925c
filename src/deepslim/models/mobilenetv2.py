"""MobileNetV2 (Sandler et al., 2018) with strides adapted to 28x28 inputs."""

from __future__ import annotations

from torch import nn

from ..core import SerializableModule
from .common import check_positive, conv_bn_relu, make_divisible
from .registry import register_model

# (expansion t, output channels c, repeats n, first stride s), shortened for 28x28 inputs.
SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 2, 2), (6, 96, 1, 1))


class InvertedResidual(SerializableModule):
    """1x1 expand -> 3x3 depthwise -> 1x1 linear projection, residual when shapes match."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, expansion: int):
        super().__init__()
        hidden = in_channels * expansion
        layers: list[nn.Module] = []
        if expansion != 1:
            layers.append(conv_bn_relu(in_channels, hidden, 1, activation=nn.ReLU6))
        layers += [conv_bn_relu(hidden, hidden, 3, stride, groups=hidden, activation=nn.ReLU6),
                   nn.Conv2d(hidden, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)]
        self.block = nn.Sequential(*layers)
        self.use_residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        return x + self.block(x) if self.use_residual else self.block(x)


class MobileNetV2(SerializableModule):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, width_mult: float = 1.0,
                 last_channels: int = 512, dropout: float = 0.2):
        super().__init__()
        check_positive("in_channels", in_channels, "mobilenetv2")
        check_positive("num_classes", num_classes, "mobilenetv2")
        if not width_mult > 0:
            raise ValueError(f"width_mult must be > 0, got {width_mult}")
        channels = make_divisible(32 * width_mult)
        layers: list[nn.Module] = [conv_bn_relu(in_channels, channels, 3, 1, activation=nn.ReLU6)]
        for t, c, n, s in SETTINGS:
            out = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(channels, out, s if i == 0 else 1, t))
                channels = out
        last = make_divisible(last_channels * max(1.0, width_mult))
        layers.append(conv_bn_relu(channels, last, 1, activation=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(last, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(self.flatten(self.pool(self.features(x)))))


@register_model("mobilenetv2", family="mobilenet")
def mobilenetv2(in_channels: int = 1, num_classes: int = 10, width_mult: float = 1.0, last_channels: int = 512,
                dropout: float = 0.2) -> nn.Module:
    """MobileNetV2: inverted residuals with depthwise convs; ``width_mult`` scales every layer."""
    return MobileNetV2(in_channels, num_classes, width_mult, last_channels, dropout)
