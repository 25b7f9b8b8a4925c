import pytest
import torch

from deepslim.core import DeepslimError
from deepslim.quantize.primitives import affine_params, dequantize, fake_quantize, qrange, quantize, weight_scales


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_symmetric_round_trip_error_is_at_most_half_a_step(bits):
    torch.manual_seed(0)
    w = torch.randn(16, 3, 3, 3)
    scale = weight_scales(w, bits)
    qmin, qmax = qrange(bits, signed=True, narrow=True)
    q = quantize(w, scale, 0, qmin, qmax, axis=0)
    assert q.min() >= qmin and q.max() <= qmax
    err = (dequantize(q, scale, 0, axis=0) - w).abs()
    assert (err <= scale.view(-1, 1, 1, 1) / 2 + 1e-7).all()


def test_per_channel_scales_are_max_abs_over_qmax():
    w = torch.tensor([[0.5, -2.0, 1.0], [0.1, 0.2, -0.3]])
    assert torch.allclose(weight_scales(w, 8), torch.tensor([2.0 / 127, 0.3 / 127]))
    assert torch.allclose(weight_scales(w, 8, per_channel=False), torch.tensor([2.0 / 127]))
    assert torch.allclose(weight_scales(w, 4), torch.tensor([2.0 / 7, 0.3 / 7]))


def test_affine_params_cover_range_and_make_zero_exact():
    scale, zp = affine_params(-0.7, 2.3, bits=8)
    q = quantize(torch.tensor([0.0, -0.7, 2.3]), scale, zp, 0, 255)
    assert q[0] == zp and q[1] == 0 and q[2] >= 254  # the rounded zero point may cost the top code
    assert (dequantize(q, scale, zp) - torch.tensor([0.0, -0.7, 2.3])).abs().max() <= scale
    assert dequantize(q[:1], scale, zp).item() == 0.0
    scale, zp = affine_params(0.5, 4.0)  # ranges always include zero (e.g. after ReLU)
    assert zp == 0


def test_fake_quant_matches_quantize_dequantize_and_passes_gradients():
    x = torch.linspace(-3, 3, 101, requires_grad=True)
    scale, zp = affine_params(-1.0, 1.0)
    y = fake_quantize(x, scale, zp, 0, 255)
    assert torch.allclose(y, dequantize(quantize(x.detach(), scale, zp, 0, 255), scale, zp))
    y.sum().backward()
    inside = (x.detach() > -1.0) & (x.detach() < 1.0)
    assert (x.grad[inside] == 1).all() and (x.grad[x.detach().abs() > 1.1] == 0).all()


def test_learnable_scale_gets_a_gradient():
    x = torch.randn(100)
    scale = torch.tensor(0.05, requires_grad=True)
    fake_quantize(x, scale, 0, -7, 7).pow(2).sum().backward()
    assert scale.grad is not None and scale.grad != 0


@pytest.mark.parametrize("bits", [0, 9, 2.5, True])
def test_unsupported_bit_widths(bits):
    with pytest.raises(DeepslimError, match="from 1 to 8"):
        qrange(bits, signed=True)
