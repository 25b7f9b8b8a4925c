import pytest
import torch
from torch import nn

from deepslim.lowrank.decompose import (
    factorize_conv_channel,
    factorize_conv_spatial,
    factorize_conv_tucker,
    factorize_linear,
)

torch.manual_seed(0)


def _max_diff(a, b, x):
    with torch.no_grad():
        return (a(x) - b(x)).abs().max().item()


CONVS = [
    nn.Conv2d(6, 10, 3, padding=1),
    nn.Conv2d(6, 10, (3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 2)),
    nn.Conv2d(4, 8, 3, padding="same", bias=False),
    nn.Conv2d(4, 8, 3, padding=1, padding_mode="reflect"),
]


@pytest.mark.parametrize("conv", CONVS)
def test_full_rank_reproduces_the_conv_exactly(conv):
    x = torch.randn(2, conv.in_channels, 11, 13)
    n, c, kh, kw = conv.weight.shape
    assert _max_diff(factorize_conv_channel(conv, min(n, c * kh * kw)), conv, x) < 1e-4
    assert _max_diff(factorize_conv_spatial(conv, min(c * kh, n * kw)), conv, x) < 1e-4
    assert _max_diff(factorize_conv_tucker(conv, n, c), conv, x) < 1e-4


def test_full_rank_linear_and_1d_3d_convs():
    linear = nn.Linear(12, 7)
    x = torch.randn(3, 5, 12)
    assert _max_diff(factorize_linear(linear, 7), linear, x) < 1e-4
    conv1d = nn.Conv1d(3, 5, 3, padding=1)
    assert _max_diff(factorize_conv_channel(conv1d, 5), conv1d, torch.randn(2, 3, 9)) < 1e-4
    assert _max_diff(factorize_conv_tucker(conv1d, 5, 3), conv1d, torch.randn(2, 3, 9)) < 1e-4
    conv3d = nn.Conv3d(2, 4, 3, padding=1)
    assert _max_diff(factorize_conv_tucker(conv3d, 4, 2), conv3d, torch.randn(1, 2, 5, 5, 5)) < 1e-4


@pytest.mark.parametrize("method", ["channel", "spatial", "tucker", "linear"])
def test_error_grows_monotonically_as_rank_drops(method):
    conv = nn.Conv2d(8, 16, 3, padding=1)
    linear = nn.Linear(24, 16)
    build, full = {"channel": (lambda r: factorize_conv_channel(conv, r), 16),
                   "spatial": (lambda r: factorize_conv_spatial(conv, r), 24),
                   "tucker": (lambda r: factorize_conv_tucker(conv, r, max(1, r // 2)), 16),
                   "linear": (lambda r: factorize_linear(linear, r), 16)}[method]
    reference = linear if method == "linear" else conv
    errors = [_weight_error(build(r), reference) for r in range(full, 0, -3)]
    assert all(a <= b + 1e-6 for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] > 10 * max(errors[0], 1e-3)
    if method != "tucker":  # tucker's r_in = r/2 is below full rank even at r_out = 16
        assert errors[0] < 1e-4


def _weight_error(chain, reference) -> float:
    """||W - W_hat||: the chain's effective weight read back with unit impulses (no padding, stride 1)."""
    if isinstance(reference, nn.Linear):
        eye = torch.eye(reference.in_features)
        with torch.no_grad():
            w_hat = (chain(eye) - chain(torch.zeros_like(eye))).T
        return (w_hat - reference.weight).norm().item()
    n, c, kh, kw = reference.weight.shape
    impulses = torch.eye(c * kh * kw).reshape(c * kh * kw, c, kh, kw)
    layers = []
    for m in chain:
        layer = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, bias=False)
        layer.weight.data.copy_(m.weight.data)
        layers.append(layer)
    with torch.no_grad():
        w_hat = nn.Sequential(*layers)(impulses).reshape(c, kh, kw, n).permute(3, 0, 1, 2)
    return (w_hat - reference.weight).norm().item()
