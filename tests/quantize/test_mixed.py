import pytest

import deepslim
from deepslim.core import DeepslimError
from deepslim.quantize.mixed import MixedPrecisionResult, allocate_bits, bit_sensitivity, weight_bits_model
from deepslim.testing import tiny_data


def test_sweep_allocation_meets_the_budget(device):
    data = tiny_data(n_train=300)
    model = deepslim.create_model("lenet5")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=2, batch_size=32, optimizer="adamw", lr=3e-3),
                   device=device)
    result = bit_sensitivity(model, data.val)  # validation data on the CPU, the model on `device`
    assert set(result.drops) == {"0", "3", "7", "9", "11"}
    assert all(set(d) == {8, 4, 2} for d in result.drops.values())
    full = sum(result.params.values())  # bytes at 8 bits
    bits = allocate_bits(result, 0.4 * full)
    assert sum(result.params[n] * b / 8 for n, b in bits.items()) <= 0.4 * full
    assert set(bits.values()) <= {8, 4, 2}
    mixed = weight_bits_model(model, bits)
    assert deepslim.evaluate(mixed, data.test, device=device)["n"] == len(data.test)


def test_allocation_prefers_insensitive_layers_and_refuses_impossible_budgets():
    r = MixedPrecisionResult(90.0, [8, 4, 2], {"big": 10000, "small": 100},
                             {"big": {8: 0.0, 4: 0.1, 2: 0.5}, "small": {8: 0.0, 4: 3.0, 2: 20.0}})
    assert allocate_bits(r, 3000) == {"big": 2, "small": 8}
    with pytest.raises(DeepslimError, match="below"):
        allocate_bits(r, 100)
