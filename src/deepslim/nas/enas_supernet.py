"""Shared weights for the ENAS macro space: every layer holds all its candidate ops, and a child (one
``EnasArch``) runs one op per layer with its skip connections (Pham et al. 2018: children share the
parameters of one graph). ``extract_child`` turns a child into a standalone ``EnasChild`` holding only the
weights it uses: it saves, loads, exports to ONNX and takes every compression verb.

Each op is ReLU -> conv -> BatchNorm (separable: depthwise then pointwise), pools have no weights; a layer's
output is BatchNorm(op(previous) + the chosen earlier outputs, max-pooled to its size).

Example:
    >>> import torch
    >>> net = EnasSupernet(channels=8, num_layers=4, reduce_after=(1,))
    >>> arch = net.space.sample(0)
    >>> child = extract_child(net, arch).eval()
    >>> x = torch.randn(2, 1, 28, 28)
    >>> torch.allclose(child(x), net.eval()(x, arch), atol=1e-5)
    True
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import nn

from ..core import SerializableModule
from .enas_space import EnasArch, EnasMacroSpace
from .space import get_space


def make_op(name: str, channels: int) -> nn.Module:
    """The module of op ``name`` (see ``enas_space.OPS``) at ``channels`` channels, stride 1."""
    if name in ("max3", "avg3"):
        return nn.MaxPool2d(3, 1, 1) if name == "max3" else nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    k = int(name[-1])
    if name.startswith("sep"):
        return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels, bias=False),
                             nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels))
    return nn.Sequential(nn.ReLU(), nn.Conv2d(channels, channels, k, padding=k // 2, bias=False),
                         nn.BatchNorm2d(channels))


def _fit(x, size: int):
    """``x`` max-pooled (2x2, ceil) until its side is ``size``: how an earlier layer's output joins a later one."""
    while x.shape[-1] > size:
        x = F.max_pool2d(x, 2, ceil_mode=True)
    return x


class _Body(SerializableModule):
    """Stem, layers and classifier shared by the supernet and a child; ``ops_for(i)`` names layer i's ops."""

    def _build(self, space: EnasMacroSpace, layer_ops: list[list[str]]) -> None:
        self.__dict__["_space"] = space  # a Config, not a module: kept out of nn.Module's bookkeeping
        c = space.channels
        self.stem = nn.Sequential(nn.Conv2d(space.in_channels, c, 3, space.stem_stride, 1, bias=False),
                                  nn.BatchNorm2d(c))
        self.layers = nn.ModuleList(nn.ModuleDict({op: make_op(op, c) for op in ops}) for ops in layer_ops)
        self.norms = nn.ModuleList(nn.BatchNorm2d(c) for _ in layer_ops)
        self.dropout = nn.Dropout(space.dropout)
        self.fc = nn.Linear(c, space.num_classes)

    @property
    def space(self) -> EnasMacroSpace:
        return self._space

    def _run(self, x, arch: EnasArch):
        h, outputs = self.stem(x), []
        for i, (op, skips) in enumerate(zip(arch.ops, arch.skips)):
            y = self.layers[i][op](h)
            for j, on in enumerate(skips):
                if on:
                    y = y + _fit(outputs[j], y.shape[-1])
            h = self.norms[i](y)
            if i in self.space.reduce_after:
                h = F.max_pool2d(h, 2, ceil_mode=True)
            outputs.append(h)
        h = F.adaptive_avg_pool2d(F.relu(h), 1).flatten(1)
        return self.fc(self.dropout(h))


class EnasSupernet(_Body):
    """All candidate ops of every layer of an ``EnasMacroSpace``; arguments are the space's options so
    ``deepslim.save``/``load`` rebuild it. ``forward(x, arch=None)`` runs ``arch`` or the active one."""

    def __init__(self, space: str = "enas-macro", in_channels: int = 1, num_classes: int = 10, channels: int = 32,
                 num_layers: int = 6, reduce_after: tuple[int, ...] = (1, 3), stem_stride: int = 2,
                 ops: tuple[str, ...] = ("conv3", "conv5", "sep3", "sep5", "max3", "avg3"), dropout: float = 0.1):
        super().__init__()
        spec = get_space(space, in_channels=in_channels, num_classes=num_classes, channels=channels,
                              num_layers=num_layers, reduce_after=tuple(reduce_after), stem_stride=stem_stride,
                              ops=tuple(ops), dropout=dropout)
        self._build(spec, [list(spec.ops)] * spec.num_layers)
        self.__dict__["active_arch"] = spec.sample(0)

    @classmethod
    def from_space(cls, space: EnasMacroSpace) -> "EnasSupernet":
        return cls(space.name, **space.options())

    def set_active(self, arch: EnasArch | dict) -> EnasArch:
        arch = self.space.validate(arch)
        self.__dict__["active_arch"] = arch
        return arch

    def forward(self, x, arch: EnasArch | None = None):
        return self._run(x, self.active_arch if arch is None else self.space.validate(arch))


class EnasChild(_Body):
    """A standalone child: layer i runs op ``arch_ops[i]`` and adds the earlier layers flagged in
    ``arch_skips[i]``; the other arguments are the space's (JSON values only, so save/load rebuild it)."""

    def __init__(self, arch_ops: tuple[str, ...] = ("conv3",), arch_skips: tuple = ((),), in_channels: int = 1,
                 num_classes: int = 10, channels: int = 32, reduce_after: tuple[int, ...] = (),
                 stem_stride: int = 2, dropout: float = 0.1):
        super().__init__()
        spec = get_space("enas-macro", in_channels=in_channels, num_classes=num_classes, channels=channels,
                         num_layers=len(arch_ops), reduce_after=tuple(reduce_after), stem_stride=stem_stride,
                         dropout=dropout)
        self.__dict__["child_arch"] = spec.validate(EnasArch(tuple(arch_ops), tuple(map(tuple, arch_skips))))
        self._build(spec, [[op] for op in self.child_arch.ops])

    def forward(self, x):
        return self._run(x, self.child_arch)


def new_child(space: EnasMacroSpace, arch: EnasArch) -> EnasChild:
    """A standalone ``EnasChild`` of ``arch`` in ``space``, freshly initialised."""
    return EnasChild(list(arch.ops), [list(f) for f in arch.skips], space.in_channels, space.num_classes,
                     space.channels, list(space.reduce_after), space.stem_stride, space.dropout)


def extract_child(supernet: EnasSupernet, arch: EnasArch | dict | None = None) -> EnasChild:
    """A standalone ``EnasChild`` of ``arch`` (default: the active one) with the supernet's weights for it.
    BatchNorm statistics are copied as they are; recalibrate before judging it."""
    arch = supernet.space.validate(arch) if arch is not None else supernet.active_arch
    child = new_child(supernet.space, arch)
    state = {k: v for k, v in supernet.state_dict().items() if k in child.state_dict()}
    child.load_state_dict(state)
    child.train(supernet.training)
    child.__dict__["deepslim_metadata"] = {"nas": {"space": supernet.space.to_dict(), "arch": arch.to_dict()}}
    return child
