import copy

import torch

from deepslim.prune import coupled_groups, short_finetune

X = torch.randn(1, 1, 28, 28)


def test_coupled_groups_follow_the_residual_adds(trained_resnet8):
    model, _ = trained_resnet8
    groups = coupled_groups(model, X)
    # the stem feeds stage 0's residual add; stage 1's second conv and its shortcut add together
    members = {frozenset(m) for m in groups.values()}
    assert frozenset({"stem.0", "stages.0.0.conv2"}) in members
    assert frozenset({"stages.1.0.conv2", "stages.1.0.shortcut.0"}) in members
    assert all("fc" not in m for m in members)


def test_short_finetune_trains_in_place_on_the_window(trained_resnet8):
    model, data = trained_resnet8
    model = copy.deepcopy(model)
    before = [p.detach().clone() for p in model.parameters()]
    short_finetune(model, data.train, 64, lr=0.05, batch_size=32, offset=len(data.train) - 10)  # wraps around
    assert not model.training
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
