import numpy as np
import pytest
import torch

import deepslim
from deepslim.export import onnx_session, run_onnx
from deepslim.nas import OFASubnet, OFASupernet, extract_subnet

from .conftest import TINY

X = torch.randn(5, 1, 28, 28, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("seed", range(4))
def test_subnet_equals_supernet(tiny_supernet, seed):
    arch = tiny_supernet.space.sample(seed)
    sub = extract_subnet(tiny_supernet, arch).eval()
    tiny_supernet.set_active(arch)
    assert (sub(X) - tiny_supernet(X)).abs().max() < 1e-5


def test_subnet_has_only_the_active_weights(tiny_supernet):
    space = tiny_supernet.space
    small, big = extract_subnet(tiny_supernet, space.smallest()), extract_subnet(tiny_supernet, space.largest())
    assert len(small.blocks) == 4 and len(big.blocks) == 8
    params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    assert params(small) < params(big) < params(tiny_supernet)
    assert small.blocks[0].depthwise[0].kernel_size == (3, 3) and big.blocks[0].depthwise[0].kernel_size == (7, 7)
    assert not any("transform" in n for n, _ in big.named_parameters())


def test_small_kernels_crop_or_transform(tiny_supernet):
    arch = tiny_supernet.space.smallest()
    crop = OFASupernet(**TINY, kernel_transform="crop")
    for net, is_crop in ((crop, True), (tiny_supernet, False)):
        w3 = extract_subnet(net, arch).blocks[0].depthwise[0].weight
        w7 = net.stages[0][0].depthwise.conv.weight
        # a crop supernet's 3x3 is the 7x7's centre; the transform one's is not once its matrices moved
        assert torch.allclose(w3, w7[:w3.shape[0], :, 2:5, 2:5]) is is_crop


def test_save_load_and_metadata(tiny_supernet, tmp_path):
    arch = tiny_supernet.space.sample(1)
    sub = extract_subnet(tiny_supernet, arch).eval()
    deepslim.save(sub, tmp_path / "sub")
    again = deepslim.load(tmp_path / "sub")
    assert type(again) is OFASubnet
    torch.testing.assert_close(again(X), sub(X))
    assert again.deepslim_metadata["nas"]["arch"] == arch.to_dict()


def test_onnx_agrees_with_ort(tiny_supernet, tmp_path):
    sub = extract_subnet(tiny_supernet, tiny_supernet.space.sample(3)).eval()
    info = deepslim.export_onnx(sub, tmp_path / "sub.onnx", X[:1])
    assert info["max_abs_diff"] < 1e-4
    ort = run_onnx(onnx_session(tmp_path / "sub.onnx"), X)
    assert np.abs(ort - sub(X).detach().numpy()).max() < 1e-4


def test_verbs_apply(tiny_supernet, tmp_path):
    space = tiny_supernet.space
    small, big = extract_subnet(tiny_supernet, space.smallest()), extract_subnet(tiny_supernet, space.largest())
    p_small, p_big = deepslim.profile(small, X[:1]), deepslim.profile(big, X[:1])
    assert 0 < p_small.macs < p_big.macs and p_small.params < p_big.params
    info = deepslim.export_int8(small, X, tmp_path / "int8.onnx")
    assert (tmp_path / "int8.onnx").is_file() and info
    logits = run_onnx(onnx_session(tmp_path / "int8.onnx"), X)
    assert logits.shape == (5, 10) and np.isfinite(logits).all()
