import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.nas import OFASupernet, get_space, sort_channels_
from deepslim.nas.supernet import DynamicBatchNorm2d, DynamicDepthwise
from deepslim.train import recalibrate_batchnorm_

from .conftest import TINY

X = torch.randn(4, 1, 28, 28, generator=torch.Generator().manual_seed(1))


def test_largest_active_after_construction_and_outputs(tiny_supernet):
    assert tiny_supernet.active_arch == tiny_supernet.space.largest()
    assert tiny_supernet(X).shape == (4, 10)


def test_depth_runs_only_the_first_blocks(tiny_supernet):
    """Blocks past the active depth are skipped: breaking them changes nothing."""
    arch = tiny_supernet.set_active(tiny_supernet.space.smallest())
    before = tiny_supernet(X)
    with torch.no_grad():
        for stage in tiny_supernet.stages:
            stage[1].project.conv.weight.fill_(1e3)  # depth choices (1, 2): block 1 is inactive
    assert arch.depths == (1, 1, 1, 1)
    torch.testing.assert_close(tiny_supernet(X), before)


def test_archs_give_different_functions(tiny_supernet):
    outs = [tiny_supernet.set_active(tiny_supernet.space.sample(s)) and tiny_supernet(X) for s in range(4)]
    assert all((outs[0] - o).abs().max() > 1e-4 for o in outs[1:])


def test_sample_active_is_seeded(tiny_supernet):
    a = tiny_supernet.sample_active(torch.Generator().manual_seed(3))
    assert a == tiny_supernet.sample_active(torch.Generator().manual_seed(3))
    assert tiny_supernet.active_arch == a


def test_set_active_refuses_foreign_arch(tiny_supernet):
    with pytest.raises(DeepslimError, match=r"arch.depths\[0\] = 4"):
        tiny_supernet.set_active(get_space("ofa-mbconv").largest())


def test_kernel_crop_and_transform():
    torch.manual_seed(0)
    crop = DynamicDepthwise(6, (3, 5, 7), transform="crop")
    w7 = crop.conv.weight
    torch.testing.assert_close(crop.weight_for(5, 6), w7[:, :, 1:6, 1:6])
    torch.testing.assert_close(crop.weight_for(3, 4), w7[:4, :, 2:5, 2:5])
    learned = DynamicDepthwise(6, (3, 5, 7))
    assert {n for n, _ in learned.named_parameters()} == {"conv.weight", "transform_5", "transform_3"}
    learned.conv.weight.data.copy_(w7)
    torch.testing.assert_close(learned.weight_for(3, 6), w7[:, :, 2:5, 2:5])  # identity at initialisation
    with torch.no_grad():
        learned.transform_5.add_(0.1)
    assert (learned.weight_for(5, 6) - w7[:, :, 1:6, 1:6]).abs().max() > 1e-3
    # the learned matrices get gradients: they are trained with the shared weight
    learned.weight_for(3, 6).sum().backward()
    assert learned.transform_5.grad is not None and learned.transform_3.grad.abs().sum() > 0


def test_dynamic_bn_slices_running_stats():
    bn = DynamicBatchNorm2d(8).train()
    bn.momentum = None  # cumulative average, as recalibration uses
    x = torch.randn(16, 5, 3, 3) * 3 + 1
    bn(x)
    torch.testing.assert_close(bn.running_mean[:5], x.mean((0, 2, 3)))
    assert torch.equal(bn.running_mean[5:], torch.zeros(3)) and torch.equal(bn.running_var[5:], torch.ones(3))
    bn.eval()
    y = bn(x)
    torch.testing.assert_close(y.mean((0, 2, 3)), torch.zeros(5), atol=1e-5, rtol=0)


def test_recalibration_reaches_dynamic_bn(tiny_supernet):
    tiny_supernet.set_active(tiny_supernet.space.smallest())
    counted = recalibrate_batchnorm_(tiny_supernet, X)
    assert counted == sum(isinstance(m, torch.nn.BatchNorm2d) for m in tiny_supernet.modules())
    stem_bn = tiny_supernet.stem[1]
    assert stem_bn.running_mean.abs().sum() > 0  # set from data, not the random values of the fixture


def test_sort_channels_keeps_largest_function_and_orders_importance(tiny_supernet):
    before = tiny_supernet(X)
    sort_channels_(tiny_supernet)
    torch.testing.assert_close(tiny_supernet(X), before, atol=1e-5, rtol=0)
    for stage in tiny_supernet.stages:
        for block in stage:
            importance = block.project.conv.weight.abs().sum(dim=(0, 2, 3))
            assert torch.all(importance[:-1] >= importance[1:])


def test_save_load_round_trip(tiny_supernet, tmp_path):
    deepslim.save(tiny_supernet, tmp_path / "supernet")
    again = deepslim.load(tmp_path / "supernet")
    assert type(again) is OFASupernet and again.space == tiny_supernet.space
    arch = tiny_supernet.space.sample(2)
    tiny_supernet.set_active(arch), again.set_active(arch)
    torch.testing.assert_close(again(X), tiny_supernet(X))


def test_bad_options_are_refused():
    with pytest.raises(DeepslimError, match="kernel_transform"):
        OFASupernet(**TINY, kernel_transform="bilinear")
    with pytest.raises(DeepslimError, match="unknown search space"):
        OFASupernet(space="nope")
