"""The elastic MBConv supernet: one set of weights, any arch of its space active at a time.

- kernel: each block keeps one depthwise weight of the largest kernel; smaller kernels take its centre,
  through learned kernel transformation matrices (OFA, Cai et al. 2020) or a plain centre crop;
- expand: the expand conv, depthwise conv and their BNs use the first ``in x ratio`` channels;
  ``sort_channels_`` puts the most important channels first so narrow subnets keep them;
- depth: a stage runs only its first ``d`` blocks;
- BatchNorm: running statistics are sliced like the weights (dynamic BN); recalibrate them
  (``deepslim.train.recalibrate_batchnorm_``) before judging a subnet.

Example:
    >>> net = OFASupernet(widths=(8, 8, 16, 16), head_channels=32)
    >>> arch = net.sample_active(0)
    >>> net(torch.randn(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core import DeepslimError, SerializableModule
from .space import Arch, MBConvSpace, get_space

KERNEL_TRANSFORMS = ("transform", "crop")


class DynamicBatchNorm2d(SerializableModule, nn.BatchNorm2d):
    """BatchNorm over the first ``C`` channels of its ``num_features`` when the input has ``C``; running
    statistics are updated (and recalibrated) slice by slice. Being a ``BatchNorm2d``,
    ``recalibrate_batchnorm_`` finds it."""

    def __init__(self, num_features: int):
        super().__init__(num_features)

    def forward(self, x):
        c = x.shape[1]
        if c == self.num_features:
            return super().forward(x)
        # nn.BatchNorm2d's logic on slices; in training F.batch_norm updates the views, i.e. the buffers.
        factor = 0.0
        if self.training and self.track_running_stats:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training or not self.track_running_stats, factor, self.eps)


class DynamicPointwise(SerializableModule):
    """A 1x1 conv whose weight is sliced to ``out_channels`` outputs and the input's channel count."""

    def __init__(self, max_in: int, max_out: int):
        super().__init__()
        self.conv = nn.Conv2d(max_in, max_out, 1, bias=False)

    def forward(self, x, out_channels: int):
        return F.conv2d(x, self.conv.weight[:out_channels, :x.shape[1]])


class DynamicDepthwise(SerializableModule):
    """A depthwise conv of elastic kernel size and channel count sharing one ``max(kernels)`` weight.

    With ``transform="transform"`` each step down (7 -> 5 -> 3) multiplies the centre crop by a learned
    ``k*k x k*k`` matrix shared by all channels (initialised to the identity, so it starts as a crop).
    """

    def __init__(self, max_channels: int, kernels: tuple[int, ...] = (3, 5, 7), stride: int = 1,
                 transform: str = "transform"):
        super().__init__()
        if transform not in KERNEL_TRANSFORMS:
            raise DeepslimError(f"kernel_transform = {transform!r} is not allowed",
                                hint=f"allowed: {', '.join(KERNEL_TRANSFORMS)}")
        self.kernels_desc = sorted(kernels, reverse=True)
        self.stride = stride
        big = self.kernels_desc[0]
        self.conv = nn.Conv2d(max_channels, max_channels, big, stride, big // 2, groups=max_channels, bias=False)
        self.use_transform = transform == "transform"
        if self.use_transform:
            for k in self.kernels_desc[1:]:
                self.register_parameter(f"transform_{k}", nn.Parameter(torch.eye(k * k)))

    def weight_for(self, kernel: int, channels: int) -> torch.Tensor:
        """The ``(channels, 1, kernel, kernel)`` filter this kernel size uses."""
        w = self.conv.weight[:channels]
        for k in self.kernels_desc[1:]:
            if k < kernel:
                break
            start = (w.shape[-1] - k) // 2
            w = w[:, :, start:start + k, start:start + k]
            if self.use_transform:
                w = F.linear(w.reshape(channels, k * k), getattr(self, f"transform_{k}")).reshape(channels, 1, k, k)
        return w

    def forward(self, x, kernel: int):
        return F.conv2d(x, self.weight_for(kernel, x.shape[1]), None, self.stride, kernel // 2, 1, x.shape[1])


class ElasticMBConv(SerializableModule):
    """1x1 expand -> k x k depthwise -> 1x1 project, with elastic ``k`` and expand ratio; residual when
    ``stride == 1`` and ``in_channels == out_channels``."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, kernels: tuple[int, ...] = (3, 5, 7),
                 expands: tuple[int, ...] = (3, 4, 6), transform: str = "transform"):
        super().__init__()
        hidden = in_channels * max(expands)
        self.expand_conv = DynamicPointwise(in_channels, hidden)
        self.expand_bn = DynamicBatchNorm2d(hidden)
        self.depthwise = DynamicDepthwise(hidden, tuple(kernels), stride, transform)
        self.depthwise_bn = DynamicBatchNorm2d(hidden)
        self.project = DynamicPointwise(hidden, out_channels)
        self.project_bn = nn.BatchNorm2d(out_channels)
        self.out_channels_ = out_channels
        self.residual = stride == 1 and in_channels == out_channels
        self.active_kernel = max(kernels)
        self.active_expand = max(expands)

    def forward(self, x):
        hidden = x.shape[1] * self.active_expand
        y = F.relu(self.expand_bn(self.expand_conv(x, hidden)))
        y = F.relu(self.depthwise_bn(self.depthwise(y, self.active_kernel)))
        y = self.project_bn(self.project(y, self.out_channels_))
        return x + y if self.residual else y


class OFASupernet(SerializableModule):
    """The elastic supernet of an ``MBConvSpace``; its arguments are the space's name and options, so
    ``deepslim.save`` / ``deepslim.load`` rebuild it. The largest arch is active after construction.

    Example:
        >>> net = OFASupernet(widths=(8, 8, 16, 16), head_channels=32, kernel_transform="crop")
        >>> net.set_active(net.space.smallest()).depths
        (2, 2, 2, 2)
    """

    def __init__(self, space: str = "ofa-mbconv", in_channels: int = 1, num_classes: int = 10,
                 stem_channels: int = 16, stem_stride: int = 2, widths: tuple[int, ...] = (16, 24, 32, 48),
                 strides: tuple[int, ...] = (1, 2, 1, 2), depth_choices: tuple[int, ...] = (2, 3, 4),
                 kernel_choices: tuple[int, ...] = (3, 5, 7), expand_choices: tuple[int, ...] = (3, 4, 6),
                 head_channels: int = 192, dropout: float = 0.1, kernel_transform: str = "transform"):
        super().__init__()
        if kernel_transform not in KERNEL_TRANSFORMS:
            raise DeepslimError(f"OFASupernet.kernel_transform = {kernel_transform!r} is not allowed",
                                hint=f"allowed: {', '.join(KERNEL_TRANSFORMS)}")
        spec = get_space(space, in_channels=in_channels, num_classes=num_classes, stem_channels=stem_channels,
                         stem_stride=stem_stride, widths=tuple(widths), strides=tuple(strides), depth_choices=tuple(depth_choices),
                         kernel_choices=tuple(kernel_choices), expand_choices=tuple(expand_choices),
                         head_channels=head_channels, dropout=dropout)
        self.__dict__["_space"] = spec  # a Config, not a module: kept out of nn.Module's bookkeeping
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_channels, 3, stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(stem_channels), nn.ReLU(inplace=True))
        stages, channels = [], stem_channels
        for width, stride in zip(spec.widths, spec.strides):
            blocks = [ElasticMBConv(channels if b == 0 else width, width, stride if b == 0 else 1,
                                    spec.kernel_choices, spec.expand_choices, kernel_transform)
                      for b in range(spec.max_depth)]
            stages.append(nn.ModuleList(blocks))
            channels = width
        self.stages = nn.ModuleList(stages)
        self.head = nn.Sequential(nn.Conv2d(channels, head_channels, 1, bias=False), nn.BatchNorm2d(head_channels),
                                  nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(head_channels, num_classes)
        self.set_active(spec.largest())

    @property
    def space(self) -> MBConvSpace:
        return self._space

    @classmethod
    def from_space(cls, space: MBConvSpace, kernel_transform: str = "transform") -> "OFASupernet":
        """The supernet of a space object.

        Example:
            >>> from deepslim.nas import get_space
            >>> OFASupernet.from_space(get_space("ofa-mbconv", widths=(8, 8, 16, 16))).space.widths
            (8, 8, 16, 16)
        """
        return cls(space.name, **space.options(), kernel_transform=kernel_transform)

    def set_active(self, arch: Arch | dict) -> Arch:
        """Make ``arch`` the subnet that ``forward`` runs; returns it as a validated ``Arch``."""
        arch = self.space.validate(arch)
        for s, stage in enumerate(self.stages):
            for b, block in enumerate(stage[:arch.depths[s]]):
                block.active_kernel = arch.kernels[s][b]
                block.active_expand = arch.expands[s][b]
        self.__dict__["active_arch"] = arch
        return arch

    def sample_active(self, generator=None, **restrict) -> Arch:
        """Make a random arch active (``restrict`` as in ``MBConvSpace.sample``) and return it."""
        return self.set_active(self.space.sample(generator, **restrict))

    def forward(self, x):
        x = self.stem(x)
        for stage, depth in zip(self.stages, self.active_arch.depths):
            for block in stage[:depth]:
                x = block(x)
        return self.fc(self.dropout(self.flatten(self.pool(self.head(x)))))


@torch.no_grad()
def sort_channels_(supernet: OFASupernet) -> OFASupernet:
    """Reorder every block's hidden channels by importance (L1 norm of the projection weights that read
    them, as OFA does), most important first, so narrower expand ratios keep the most important channels.

    A permutation of hidden channels: the largest net computes exactly the same function.

    Example:
        >>> net = OFASupernet(widths=(8, 8, 16, 16), head_channels=32)
        >>> sort_channels_(net) is net
        True
    """
    for stage in supernet.stages:
        for block in stage:
            importance = block.project.conv.weight.abs().sum(dim=(0, 2, 3))
            order = torch.argsort(importance, descending=True, stable=True)
            block.project.conv.weight.copy_(block.project.conv.weight[:, order])
            block.expand_conv.conv.weight.copy_(block.expand_conv.conv.weight[order])
            block.depthwise.conv.weight.copy_(block.depthwise.conv.weight[order])
            for bn in (block.expand_bn, block.depthwise_bn):
                for t in (bn.weight, bn.bias, bn.running_mean, bn.running_var):
                    t.copy_(t[order])
    return supernet
