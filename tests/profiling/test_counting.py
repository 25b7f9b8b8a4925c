"""Exact MAC counts against hand-computed formulas, one test per counting rule."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel

import deepslim
from deepslim.profiling import count_ops, profile


def macs(model, *inputs):
    result = count_ops(model.eval(), inputs)
    assert result.uncounted == [], result.uncounted
    assert result.flops == 2 * result.macs
    return result.macs


@pytest.mark.parametrize("groups, stride, dilation, padding", [(1, 1, 1, 1), (2, 2, 1, 0), (4, 1, 2, 2), (8, 3, 1, 1)])
def test_conv2d_any_groups_stride_dilation_padding(groups, stride, dilation, padding):
    conv = nn.Conv2d(8, 16, 3, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = torch.randn(2, 8, 13, 11)
    n, c_out, h, w = conv(x).shape
    assert macs(conv, x) == n * c_out * h * w * (8 // groups) * 3 * 3


def test_conv1d_conv3d_and_depthwise():
    c1 = nn.Conv1d(4, 6, 5, stride=2)
    x1 = torch.randn(3, 4, 20)
    assert macs(c1, x1) == 3 * 6 * c1(x1).shape[-1] * 4 * 5
    c3 = nn.Conv3d(2, 4, (3, 2, 2))
    x3 = torch.randn(1, 2, 5, 6, 7)
    assert macs(c3, x3) == 4 * (3 * 5 * 6) * 2 * 3 * 2 * 2
    dw = nn.Conv2d(16, 16, 3, padding=1, groups=16)
    assert macs(dw, torch.randn(1, 16, 8, 8)) == 16 * 8 * 8 * 9


def test_transposed_conv_counts_input_positions():
    conv = nn.ConvTranspose2d(3, 4, 3, stride=2, groups=1)
    x = torch.randn(2, 3, 5, 6)
    assert macs(conv, x) == 2 * 3 * 5 * 6 * 4 * 3 * 3


def test_linear_on_nd_inputs():
    assert macs(nn.Linear(7, 5), torch.randn(2, 3, 4, 7)) == 2 * 3 * 4 * 7 * 5


class Functional(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(6, 4))  # a bare parameter, no nn.Linear

    def forward(self, a, b3, c3):
        return (a @ self.w, torch.mm(a, self.w), torch.bmm(b3, c3), torch.matmul(b3, c3),
                torch.einsum("bij,bjk->bik", b3, c3), torch.addmm(torch.zeros(4), a, self.w),
                torch.baddbmm(torch.zeros(2, 3, 5), b3, c3))


def test_functional_matmuls_and_bare_parameters_are_counted_on_the_calling_module():
    a, b3, c3 = torch.randn(3, 6), torch.randn(2, 3, 4), torch.randn(2, 4, 5)
    result = count_ops(Functional(), (a, b3, c3))
    mm, bmm = 3 * 6 * 4, 2 * 3 * 4 * 5
    assert result.macs == 3 * mm + 4 * bmm
    assert [layer.macs for layer in result.layers if layer.name == "Functional"] == [3 * mm + 4 * bmm]


class Attention(nn.Module):
    def forward(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)


@pytest.mark.parametrize("backend", [None, SDPBackend.MATH])
def test_scaled_dot_product_attention_default_cpu_and_math_backends(backend):
    b, h, lq, s, e, ev = 2, 3, 5, 7, 8, 4
    q, k, v = torch.randn(b, h, lq, e), torch.randn(b, h, s, e), torch.randn(b, h, s, ev)
    expected = b * h * lq * s * e + b * h * lq * s * ev
    if backend is None:
        assert macs(Attention(), q, k, v) == expected
    else:
        with sdpa_kernel(backend):
            assert count_ops(Attention(), (q, k, v)).macs == expected


def test_multihead_attention_projections_scores_and_values():
    b, lq, e, heads = 2, 6, 16, 4
    mha = nn.MultiheadAttention(e, heads, batch_first=True)
    x = torch.randn(b, lq, e)
    projections = 4 * b * lq * e * e
    scores_and_values = 2 * b * lq * lq * e
    assert macs(mha, x, x, x) == projections + scores_and_values  # inference fast path
    mha.train()  # the composite path (matmuls), with dropout 0
    result = count_ops(mha, (x, x, x))
    assert result.macs == projections + scores_and_values and not result.uncounted


@pytest.mark.parametrize("cls, gates", [(nn.LSTM, 4), (nn.GRU, 3), (nn.RNN, 1)])
def test_recurrent_layers(cls, gates):
    t, b, i, h = 5, 2, 8, 16
    one_layer = cls(i, h)
    assert macs(one_layer, torch.randn(t, b, i)) == t * b * gates * h * (i + h)
    two_layers_bi = cls(i, h, num_layers=2, bidirectional=True)
    expected = 2 * t * b * gates * h * (i + h) + 2 * t * b * gates * h * (2 * h + h)
    assert macs(two_layers_bi, torch.randn(t, b, i)) == expected


@pytest.mark.parametrize("cls, gates", [(nn.LSTMCell, 4), (nn.GRUCell, 3), (nn.RNNCell, 1)])
def test_recurrent_cells(cls, gates):
    b, i, h = 3, 8, 16
    assert macs(cls(i, h), torch.randn(b, i)) == b * gates * h * (i + h)


def test_resnet_matches_layer_by_layer_formula():
    model = deepslim.create_model("resnet8").eval()
    expected = 0
    shapes = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            module.register_forward_hook(lambda m, i, o, n=name: shapes.__setitem__(n, o.shape))
    model(torch.randn(1, 1, 28, 28))
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            _, c, h, w = shapes[name]
            expected += c * h * w * module.in_channels * 9 // (9 // (module.kernel_size[0] ** 2))
    expected += model.fc.in_features * model.fc.out_features
    assert count_ops(model, (torch.randn(1, 1, 28, 28),)).macs == expected


def test_uncounted_ops_are_listed_not_hidden():
    class Fft(nn.Module):
        def forward(self, x):
            return torch.fft.fft(x).real

    result = profile(Fft(), torch.randn(4, 8))
    assert result.uncounted and result.uncounted[0]["module"] == "Fft"
    assert "uncounted" in result.table()


def test_profile_fields_and_layers():
    p = profile(deepslim.create_model("lenet5"), torch.randn(1, 1, 28, 28))
    assert p.params == 61706 and p.macs == 416520 and p.flops == 2 * p.macs
    assert p.param_bytes == {"float32": 61706 * 4}
    assert p.activation_bytes > 1 * 28 * 28 * 4
    conv = next(layer for layer in p.layers if layer.name == "0")
    assert (conv.type, conv.params, conv.macs, conv.output_shape) == ("Conv2d", 156, 6 * 28 * 28 * 25, [1, 6, 28, 28])
    assert sum(layer.macs for layer in p.layers) == p.macs
    assert p.to_dict()["layers"][0]["name"] == "0"


def test_peak_activation_memory_of_a_chain():
    from deepslim.profiling import peak_activation_bytes

    model = nn.Sequential(nn.Linear(10, 20), nn.Linear(20, 30), nn.Linear(30, 5))
    # input (40 B) stays alive; at the peak the 20- and 30-wide outputs are both alive
    assert peak_activation_bytes(model, torch.randn(1, 10)) == 40 + 80 + 120


def test_failing_forward_is_a_clear_error():
    with pytest.raises(deepslim.DeepslimError, match=r"failed on inputs of shape \(1, 3, 28, 28\)"):
        profile(deepslim.create_model("lenet5"), torch.randn(1, 3, 28, 28))
