"""A standalone static model holding exactly the weights one arch of a supernet uses.

The subnet is built from ordinary ``nn.Conv2d`` / ``nn.BatchNorm2d`` / ``nn.ReLU`` layers, so every deepslim
verb (profile, prune_, quantize_, export_onnx, export_int8 ...) applies to it, and ``deepslim.save`` /
``deepslim.load`` rebuild it from its constructor arguments (its classes live in ``deepslim.*``, which
artifacts trust; nothing to register).

Example:
    >>> from deepslim.nas import OFASupernet
    >>> net = OFASupernet(widths=(8, 8, 16, 16), head_channels=32).eval()
    >>> sub = extract_subnet(net, net.space.smallest()).eval()
    >>> x = torch.randn(2, 1, 28, 28)
    >>> net.set_active(net.space.smallest()) and bool((sub(x) - net(x)).abs().max() < 1e-5)
    True
"""

from __future__ import annotations

import torch
from torch import nn

from ..core import SerializableModule
from .space import Arch
from .supernet import OFASupernet


class MBConvBlock(SerializableModule):
    """1x1 expand -> ``kernel_size`` depthwise -> 1x1 project (linear), residual when stride 1 and in == out."""

    def __init__(self, in_channels: int, out_channels: int, hidden_channels: int, kernel_size: int = 3,
                 stride: int = 1):
        super().__init__()
        self.expand = nn.Sequential(nn.Conv2d(in_channels, hidden_channels, 1, bias=False),
                                    nn.BatchNorm2d(hidden_channels), nn.ReLU(inplace=True))
        self.depthwise = nn.Sequential(nn.Conv2d(hidden_channels, hidden_channels, kernel_size, stride,
                                                 kernel_size // 2, groups=hidden_channels, bias=False),
                                       nn.BatchNorm2d(hidden_channels), nn.ReLU(inplace=True))
        self.project = nn.Sequential(nn.Conv2d(hidden_channels, out_channels, 1, bias=False),
                                     nn.BatchNorm2d(out_channels))
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x):
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class OFASubnet(SerializableModule):
    """Stem -> ``blocks`` (each ``[in, out, hidden, kernel, stride]``) -> 1x1 head -> pool -> linear.

    Example:
        >>> OFASubnet(blocks=[[16, 8, 48, 3, 2]], head_channels=32)(torch.randn(1, 1, 28, 28)).shape
        torch.Size([1, 10])
    """

    def __init__(self, in_channels: int = 1, num_classes: int = 10, stem_channels: int = 16,
                 blocks: tuple = (), head_channels: int = 256, dropout: float = 0.1, stem_stride: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_channels, 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(stem_channels), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*(MBConvBlock(*map(int, b)) for b in blocks))
        last = int(blocks[-1][1]) if blocks else stem_channels
        self.head = nn.Sequential(nn.Conv2d(last, head_channels, 1, bias=False), nn.BatchNorm2d(head_channels),
                                  nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(head_channels, num_classes)

    def forward(self, x):
        return self.fc(self.dropout(self.flatten(self.pool(self.head(self.blocks(self.stem(x)))))))


def _copy_bn(target: nn.BatchNorm2d, source: nn.BatchNorm2d, channels: int) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(target, name).copy_(getattr(source, name)[:channels])
    target.num_batches_tracked.copy_(source.num_batches_tracked)
    target.eps, target.momentum = source.eps, source.momentum


@torch.no_grad()
def extract_subnet(supernet: OFASupernet, arch: Arch | dict | None = None) -> OFASubnet:
    """A standalone ``OFASubnet`` with the weights ``arch`` (default: the active arch) uses in ``supernet``
    (smaller kernels with their transformation applied; BN statistics sliced as they are now, so
    recalibrate the supernet first). Its output equals the supernet's with ``arch`` active.

    The arch and space are kept in ``model.deepslim_metadata["nas"]``, so ``deepslim.save`` records them.
    The supernet's active arch is left as it was.
    """
    space = supernet.space
    arch = space.validate(arch) if arch is not None else supernet.active_arch
    specs, channels = [], space.stem_channels
    for s, (width, stride) in enumerate(zip(space.widths, space.strides)):
        for b in range(arch.depths[s]):
            specs.append([channels, width, channels * arch.expands[s][b], arch.kernels[s][b], stride if b == 0 else 1])
            channels = width
    sub = OFASubnet(space.in_channels, space.num_classes, space.stem_channels, specs, space.head_channels,
                    space.dropout, space.stem_stride)
    sub.stem.load_state_dict(supernet.stem.state_dict())
    sub.head.load_state_dict(supernet.head.state_dict())
    sub.fc.load_state_dict(supernet.fc.state_dict())
    elastic_blocks = [blk for s, stage in enumerate(supernet.stages) for blk in stage[:arch.depths[s]]]
    for block, elastic, (cin, _, hidden, kernel, _) in zip(sub.blocks, elastic_blocks, specs):
        block.expand[0].weight.copy_(elastic.expand_conv.conv.weight[:hidden, :cin])
        _copy_bn(block.expand[1], elastic.expand_bn, hidden)
        block.depthwise[0].weight.copy_(elastic.depthwise.weight_for(kernel, hidden))
        _copy_bn(block.depthwise[1], elastic.depthwise_bn, hidden)
        block.project[0].weight.copy_(elastic.project.conv.weight[:, :hidden])
        _copy_bn(block.project[1], elastic.project_bn, elastic.project_bn.num_features)
    sub.train(supernet.training)
    sub.__dict__["deepslim_metadata"] = {"nas": {"space": space.to_dict(), "arch": arch.to_dict()}}
    return sub
