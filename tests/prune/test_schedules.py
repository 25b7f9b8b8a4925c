import copy

import pytest

import deepslim
from deepslim.core import DeepslimError
from deepslim.prune import AGPSchedule, ChannelPruning, GradualPruning, MagnitudePruning, iterative_prune
from deepslim.testing import tiny_data
from deepslim.train import TrainConfig, Trainer


def test_agp_is_the_cubic_of_zhu_and_gupta():
    s = AGPSchedule(final_sparsity=0.9, initial_sparsity=0.1, start_fraction=0.2, end_fraction=0.6)
    assert s.sparsity_at(10, 100) == 0.0
    assert s.sparsity_at(20, 100) == pytest.approx(0.1)
    assert s.sparsity_at(40, 100) == pytest.approx(0.9 + (0.1 - 0.9) * 0.5 ** 3)
    assert s.sparsity_at(60, 100) == pytest.approx(0.9) and s.sparsity_at(99, 100) == pytest.approx(0.9)
    values = [s.sparsity_at(t, 100) for t in range(100)]
    assert values == sorted(values)
    with pytest.raises(DeepslimError):
        AGPSchedule(final_sparsity=0.5, initial_sparsity=0.6)


def test_gradual_pruning_reaches_target_and_masks_only_grow():
    data = tiny_data(n_train=256)
    model = deepslim.create_model("lenet5")
    pruning = GradualPruning(AGPSchedule(final_sparsity=0.8, frequency=3))
    Trainer(model, TrainConfig(epochs=2, batch_size=32, lr=0.05), callbacks=[pruning]).fit(data.train)
    sparsities = [s for _, s in pruning.history]
    assert len(sparsities) >= 3 and sparsities == sorted(sparsities)
    assert abs(pruning.masks.sparsity() - 0.8) < 1e-3
    modules = dict(model.named_modules())
    zeros = sum(int((modules[n].weight == 0).sum()) for n in pruning.masks.masks)
    assert zeros >= sum(int((~m).sum()) for m in pruning.masks.masks.values())


def test_iterative_rounds_unstructured_and_structured():
    data = tiny_data(n_train=128)
    finetune = TrainConfig(epochs=1, batch_size=32, lr=0.02)
    model = deepslim.create_model("lenet5")
    rounds = iterative_prune(model, [MagnitudePruning(0.5), MagnitudePruning(0.75)], data.train, finetune,
                             val_data=data.val)
    assert [round(r["sparsity"], 3) for r in rounds] == [0.5, 0.75] and "val_accuracy" in rounds[0]
    import torch

    model = deepslim.create_model("resnet8")
    teacher = copy.deepcopy(model).eval()
    rounds = iterative_prune(model, [ChannelPruning(0.25), ChannelPruning(0.25)], data.train, finetune,
                             example_inputs=torch.randn(1, 1, 28, 28), teacher=teacher)
    assert rounds[1]["macs_after"] < rounds[0]["macs_after"] < rounds[0]["macs_before"]
    assert all(p.grad is None for p in teacher.parameters())  # distilled from, never trained
