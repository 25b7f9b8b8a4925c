"""CIFAR-style ResNets (He et al., 2016) sized for 28x28 inputs: 3x3 stem, no initial pooling."""

from __future__ import annotations

from torch import nn

from ..core import SerializableModule
from .common import check_positive
from .registry import register_model


class BasicBlock(SerializableModule):
    """Two 3x3 conv-BN layers plus a shortcut (1x1 conv-BN when the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.relu2 = nn.ReLU(inplace=True)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                                          nn.BatchNorm2d(out_channels))

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(out + self.shortcut(x))


class ResNet(SerializableModule):
    """Stem conv, one stage per width (stride 2 from the second on), global pool, linear head."""

    def __init__(self, widths: tuple = (32, 64, 128, 256), blocks: tuple = (1, 1, 1, 1), in_channels: int = 1,
                 num_classes: int = 10):
        super().__init__()
        if len(widths) != len(blocks) or not widths:
            raise ValueError(f"widths {widths} and blocks {blocks} must be non-empty and the same length")
        for k, v in (("in_channels", in_channels), ("num_classes", num_classes), *(("widths[i]", w) for w in widths),
                     *(("blocks[i]", b) for b in blocks)):
            check_positive(k, v, "resnet")
        self.stem = nn.Sequential(nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(widths[0]), nn.ReLU(inplace=True))
        stages, channels = [], widths[0]
        for i, (width, n) in enumerate(zip(widths, blocks)):
            stage = []
            for j in range(n):
                stage.append(BasicBlock(channels, width, stride=2 if (i > 0 and j == 0) else 1))
                channels = width
            stages.append(nn.Sequential(*stage))
        self.stages = nn.Sequential(*stages)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x):
        return self.fc(self.flatten(self.pool(self.stages(self.stem(x)))))


@register_model("resnet", family="resnet")
def resnet(widths: tuple = (32, 64, 128, 256), blocks: tuple = (1, 1, 1, 1), in_channels: int = 1,
           num_classes: int = 10) -> nn.Module:
    """ResNet with configurable stage widths and blocks per stage (default ~1.2M params)."""
    return ResNet(tuple(widths), tuple(blocks), in_channels, num_classes)


@register_model("resnet8", family="resnet")
def resnet8(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> nn.Module:
    """ResNet-8: three stages of one basic block, widths w/2w/4w (~78k params at w=16)."""
    return ResNet((width, 2 * width, 4 * width), (1, 1, 1), in_channels, num_classes)


@register_model("resnet20", family="resnet")
def resnet20(in_channels: int = 1, num_classes: int = 10, width: int = 16) -> nn.Module:
    """ResNet-20 (He et al.'s CIFAR net): three stages of three basic blocks (~0.27M params)."""
    return ResNet((width, 2 * width, 4 * width), (3, 3, 3), in_channels, num_classes)
