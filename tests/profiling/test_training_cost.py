"""``profiling.training_cost``: one training step's FLOPs and time, the model left as it was."""

import torch
from torch import nn

from deepslim.profiling.training_cost import time_training_steps, training_step_flops


def _bn_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_flops_of_a_linear_step_are_forward_plus_weight_gradient():
    # forward 2*N*in*out, weight gradient the same; the input needs no gradient
    assert training_step_flops(nn.Linear(8, 4), torch.randn(2, 8)) == 2 * (2 * 2 * 8 * 4)


def test_counting_flops_leaves_batchnorm_statistics_and_mode_alone():
    model = _bn_model().eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert training_step_flops(model, torch.randn(5, 1, 8, 8) * 3 + 1) > 0
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before), "a buffer or weight changed"
    assert not model.training
    assert all(p.grad is None for p in model.parameters())


def test_timing_steps_restores_the_weights():
    model = _bn_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert time_training_steps(model, torch.randn(5, 1, 8, 8), steps=2, warmup=1) > 0
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
