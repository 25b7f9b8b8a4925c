import dataclasses

import pytest
import torch

from deepslim.core import DeepslimError
from deepslim.nas import OFASupernet
from deepslim.nas.shrinking import PHASES, ShrinkingConfig, phase_sampler, progressive_shrinking
from deepslim.testing import tiny_data

from .conftest import TINY

CFG = ShrinkingConfig(epochs_largest=1, epochs_kernel=1, epochs_depth=1, epochs_expand=1, batch_size=40,
                      subnets_per_step=2)


@pytest.fixture(scope="module")
def train():
    return tiny_data(n_train=80).train


def fresh() -> OFASupernet:
    torch.manual_seed(0)
    return OFASupernet(**TINY)


def test_phase_samplers_vary_only_the_elastic_dimensions():
    net = fresh()
    space = net.space
    archs = {phase: [phase_sampler(net, phase)(torch.Generator().manual_seed(s)) for s in range(12)]
             for phase in PHASES}
    assert all(a == space.largest() for a in archs["largest"])
    assert all(a.depths == (2,) * 4 and {e for es in a.expands for e in es} == {6} for a in archs["kernel"])
    assert len({a.kernels for a in archs["kernel"]}) > 1
    assert all({e for es in a.expands for e in es} == {6} for a in archs["depth"])
    assert len({a.depths for a in archs["depth"]}) > 1
    assert len({a.expands for a in archs["expand"]}) > 1


def test_phases_train_what_they_should(train):
    net = fresh()
    t5 = net.stages[0][0].depthwise.transform_5.detach().clone()
    w = net.fc.weight.detach().clone()
    largest_only = dataclasses.replace(CFG, epochs_kernel=0, epochs_depth=0, epochs_expand=0)
    history = progressive_shrinking(net, train, largest_only)
    assert [h["phase"] for h in history] == ["largest"]
    assert not torch.equal(net.fc.weight, w)
    # only 7x7 kernels run in the largest phase: the transformation matrices get no update
    assert torch.equal(net.stages[0][0].depthwise.transform_5, t5)
    kernel_only = dataclasses.replace(largest_only, epochs_largest=0, epochs_kernel=1)
    history = progressive_shrinking(net, train, kernel_only)
    assert [h["phase"] for h in history] == ["kernel"] and history[0]["loss"] > 0
    assert not torch.equal(net.stages[0][0].depthwise.transform_5, t5)
    assert net.active_arch == net.space.largest()
    # trained channels_last (the default), handed back in the ordinary memory format
    assert CFG.channels_last and all(p.is_contiguous() for p in net.parameters())


def test_channels_last_trains_the_same_function(train):
    one_epoch = dataclasses.replace(CFG, epochs_kernel=0, epochs_depth=0, epochs_expand=0, augment=False)
    a, b = fresh(), fresh()
    progressive_shrinking(a, train, one_epoch)
    progressive_shrinking(b, train, dataclasses.replace(one_epoch, channels_last=False))
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        # oneDNN's channels_last kernels sum in another order: gradients agree to ~1e-3 relative, not bitwise
        torch.testing.assert_close(x.float(), y.float(), atol=5e-3, rtol=0, msg=name)


def test_interrupted_training_resumes_exactly(train, tmp_path):
    whole = fresh()
    progressive_shrinking(whole, train, CFG)
    part = fresh()
    first = progressive_shrinking(part, train, CFG, checkpoint=tmp_path / "ps.pt", max_epochs=2)
    assert [h["phase"] for h in first] == ["largest", "kernel"]
    rest = progressive_shrinking(part, train, CFG, checkpoint=tmp_path / "ps.pt", resume=True)
    assert [h["phase"] for h in rest] == ["depth", "expand"]
    for (name, a), b in zip(whole.state_dict().items(), part.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_resume_refuses_another_space_or_config(train, tmp_path):
    net = fresh()
    progressive_shrinking(net, train, CFG, checkpoint=tmp_path / "ps.pt", max_epochs=1)
    other = OFASupernet(**{**TINY, "head_channels": 8})
    with pytest.raises(DeepslimError, match="another search space"):
        progressive_shrinking(other, train, CFG, checkpoint=tmp_path / "ps.pt", resume=True)
    with pytest.raises(DeepslimError, match="another search space"):
        progressive_shrinking(OFASupernet(**TINY, kernel_transform="crop"), train, CFG, checkpoint=tmp_path / "ps.pt",
                              resume=True)
    with pytest.raises(DeepslimError, match="another ShrinkingConfig"):
        progressive_shrinking(fresh(), train, dataclasses.replace(CFG, lr=0.5),
                              checkpoint=tmp_path / "ps.pt", resume=True)


def test_bad_config_and_data(train):
    with pytest.raises(DeepslimError, match="epochs_depth"):
        ShrinkingConfig(epochs_depth=-1)
    with pytest.raises(DeepslimError, match="batch_size"):
        progressive_shrinking(fresh(), train, ShrinkingConfig(batch_size=1000))
