import pytest
import torch

from deepslim.core import DeepslimError
from deepslim.nas import Evaluator, extract_subnet
from deepslim.profiling import count_ops
from deepslim.testing import tiny_data


@pytest.fixture(scope="module")
def data():
    return tiny_data(n_train=200)


def test_judges_and_caches(tiny_supernet, data):
    calls = []
    judge = Evaluator(tiny_supernet, data.train, data.val, calibration_size=50,
                      latency=lambda arch, model: calls.append((arch, model)) or 1.5)
    space = tiny_supernet.space
    before = {k: v.clone() for k, v in tiny_supernet.state_dict().items()}
    small = judge(space.smallest())
    big = judge(space.largest().to_dict())  # a dict is accepted too
    again = judge(space.smallest())
    assert again is small and judge.evaluations == 2 and len(calls) == 2
    assert calls[0][0] == space.smallest() and isinstance(calls[0][1], torch.nn.Module)
    assert small.latency_ms == 1.5 and 0.0 <= small.accuracy <= 100.0
    assert small.macs < big.macs and small.params < big.params
    assert small.macs == count_ops(extract_subnet(tiny_supernet, space.smallest()), data.train.images[:1]).macs
    # judging never changes the supernet (its BN statistics included)
    assert all(torch.equal(before[k], v) for k, v in tiny_supernet.state_dict().items())


def test_bn_is_recalibrated_on_the_calibration_images(tiny_supernet, data):
    judge = Evaluator(tiny_supernet, data.train, data.val, calibration_size=64, seed=3)
    assert len(judge.images) == 64
    model = judge.subnet(tiny_supernet.space.smallest())
    with torch.no_grad():
        stem_out = model.stem[0](judge.images)
    torch.testing.assert_close(model.stem[1].running_mean, stem_out.mean((0, 2, 3)), atol=1e-5, rtol=1e-4)
    # the fixture's random statistics would give a different mean
    assert not torch.allclose(tiny_supernet.stem[1].running_mean, model.stem[1].running_mean)


def test_calibration_subset_is_seeded(tiny_supernet, data):
    a = Evaluator(tiny_supernet, data.train, data.val, calibration_size=30, seed=1).images
    b = Evaluator(tiny_supernet, data.train, data.val, calibration_size=30, seed=1).images
    c = Evaluator(tiny_supernet, data.train, data.val, calibration_size=30, seed=2).images
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_bad_input(tiny_supernet, data):
    with pytest.raises(DeepslimError, match="calibration_size"):
        Evaluator(tiny_supernet, data.train, data.val, calibration_size=0)
    judge = Evaluator(tiny_supernet, data.train, data.val, calibration_size=10)
    with pytest.raises(DeepslimError, match="arch.depths"):
        judge({"depths": [3, 1, 1, 1], "kernels": [[3]] * 4, "expands": [[3]] * 4})
