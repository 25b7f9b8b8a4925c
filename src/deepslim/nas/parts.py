"""The parts a subnet of an MBConv space is made of, each with its input shape: what the latency table times.

The stem, the head (1x1 head conv, pooling, classifier) and, per stage, the first block (which changes
width and stride) and the later blocks (residual), for every kernel and expand ratio.

Example:
    >>> from deepslim.nas import get_space
    >>> space = get_space("ofa-mbconv")
    >>> arch_keys(space.largest())[:2]
    ['stem', 's0.first.k7.e6']
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from .space import Arch, MBConvSpace
from .subnet import MBConvBlock


def _out_size(size: int, stride: int) -> int:
    # a k x k conv with padding k // 2 (k odd): ceil(size / stride)
    return (size - 1) // stride + 1


def block_key(stage: int, first: bool, kernel: int, expand: int) -> str:
    """The table key of a block: ``s1.first.k5.e4`` (first block of stage 1) or ``s1.rest.k5.e4``."""
    return f"s{stage}.{'first' if first else 'rest'}.k{kernel}.e{expand}"


@dataclass
class Part:
    """One separately timed piece: its table ``key``, a module builder and the input shape (without batch)."""

    key: str
    build: Callable[[], nn.Module]
    input_shape: tuple[int, int, int]


def _stem(space: MBConvSpace) -> nn.Module:
    return nn.Sequential(nn.Conv2d(space.in_channels, space.stem_channels, 3, space.stem_stride, 1, bias=False),
                         nn.BatchNorm2d(space.stem_channels), nn.ReLU(inplace=True))


def _head(space: MBConvSpace) -> nn.Module:
    return nn.Sequential(nn.Conv2d(space.widths[-1], space.head_channels, 1, bias=False),
                         nn.BatchNorm2d(space.head_channels), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(space.head_channels, space.num_classes))


def space_parts(space: MBConvSpace, image_size: int = 28) -> list[Part]:
    """Every part a subnet of ``space`` is made of: stem, each (stage, first/rest, kernel, expand) block, head.

    Example:
        >>> from deepslim.nas import get_space
        >>> len(space_parts(get_space("ofa-mbconv")))      # 4 stages x 2 kinds x 3 kernels x 3 expands + 2
        74
    """
    size = _out_size(image_size, space.stem_stride)
    parts = [Part("stem", lambda: _stem(space), (space.in_channels, image_size, image_size))]
    channels = space.stem_channels
    for s, (width, stride) in enumerate(zip(space.widths, space.strides)):
        kinds = [(True, channels, stride, size)]
        if space.max_depth > 1:
            kinds.append((False, width, 1, _out_size(size, stride)))
        for first, cin, st, hw in kinds:
            for k in space.kernel_choices:
                for e in space.expand_choices:
                    parts.append(Part(block_key(s, first, k, e),
                                      lambda cin=cin, w=width, e=e, k=k, st=st: MBConvBlock(cin, w, cin * e, k, st),
                                      (cin, hw, hw)))
        size, channels = _out_size(size, stride), width
    parts.append(Part("head", lambda: _head(space), (space.widths[-1], size, size)))
    return parts


def arch_keys(arch: Arch) -> list[str]:
    """The table keys whose sum predicts ``arch``: stem, its blocks in order, head."""
    keys = ["stem"]
    for s, (ks, es) in enumerate(zip(arch.kernels, arch.expands)):
        keys += [block_key(s, b == 0, k, e) for b, (k, e) in enumerate(zip(ks, es))]
    return keys + ["head"]
