import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.lowrank import ForceRegularization, filter_rank
from deepslim.lowrank.force import filter_force
from deepslim.testing import tiny_data


def test_degradation_force_matches_the_pairwise_sum():
    w = torch.randn(5, 3, 2, 2)
    flat = w.reshape(5, -1)
    u = flat / flat.norm(dim=1, keepdim=True)

    def tangential(f, i):
        return f - (f @ u[i]) * u[i]

    expected = torch.stack([tangential(sum(u[j] - u[i] for j in range(5)), i) / 4 * flat[i].norm() for i in range(5)])
    assert torch.allclose(filter_force(w).reshape(5, -1), expected, atol=1e-5)
    constant = filter_force(w, "constant").reshape(5, -1)
    unit = torch.stack([tangential(sum((u[j] - u[i]) / (u[j] - u[i]).norm() for j in range(5) if j != i), i)
                        / 4 * flat[i].norm() for i in range(5)])
    assert torch.allclose(constant, unit, atol=1e-5)
    assert torch.allclose((filter_force(w).reshape(5, -1) * u).sum(1), torch.zeros(5), atol=1e-5)  # norms kept


@pytest.mark.parametrize("form", ["degradation", "constant"])
def test_force_alone_pulls_filters_into_a_lower_rank(form, device):
    torch.manual_seed(0)
    layer = nn.Linear(32, 16)
    model = nn.Sequential(layer, nn.Linear(16, 2)).to(device)
    callback = ForceRegularization(model, strength=1.0, form=form)
    assert list(callback.layers) == ["0"]
    rank_before = filter_rank(layer, 0.9)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(40):
        optimizer.zero_grad()
        layer.weight.grad = torch.zeros_like(layer.weight)
        callback.after_backward(None)
        optimizer.step()
    assert filter_rank(layer, 0.9) < rank_before


def test_training_with_force_lowers_the_rank_energy_needs():
    data = tiny_data(n_train=300)
    ranks = {}
    for strength in (0.0, 0.2):
        torch.manual_seed(0)
        model = deepslim.create_model("lenet5")
        cfg = deepslim.TrainConfig(epochs=3, batch_size=32, lr=0.05, seed=0)
        deepslim.Trainer(model, cfg, callbacks=[ForceRegularization(model, strength=strength)]).fit(data.train)
        ranks[strength] = sum(filter_rank(m, 0.9) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear)))
    assert ranks[0.2] < ranks[0.0]


def test_bad_settings():
    model = deepslim.create_model("lenet5")
    with pytest.raises(DeepslimError, match=">= 0"):
        ForceRegularization(model, strength=-1)
    with pytest.raises(DeepslimError, match="not known"):
        ForceRegularization(model, form="gravity")
    with pytest.raises(DeepslimError, match="did you mean"):
        ForceRegularization(model, layers=["00"])
