"""Small layers shared by the zoo."""

from __future__ import annotations

from torch import nn

from ..core import DeepslimError


def conv_bn_relu(in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1,
                 groups: int = 1, activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """Conv (no bias, 'same' padding for odd kernels) -> BatchNorm -> activation."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
        activation(inplace=True),
    )


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round a channel count to a multiple of ``divisor`` without losing more than 10%."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def check_positive(name: str, value, model: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise DeepslimError(f"model '{model}': {name} must be a positive integer, got {value!r}")
