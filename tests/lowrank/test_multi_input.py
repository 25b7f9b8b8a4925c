"""factorize_ takes any form of inputs (a tuple of positional inputs, a dict of keyword inputs, a BERT's
dict): MACs fall as asked and match the profiler, outputs keep their shape, bad inputs are refused."""

import copy

import pytest
import torch
from torch import nn

from deepslim.core import DeepslimError
from deepslim.lowrank import Factorization, factorize_
from deepslim.profiling.counting import count_ops


class TwoInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 32, 3, padding=1)
        self.fc = nn.Linear(48, 64)
        self.head = nn.Linear(96, 4)

    def forward(self, image, features):
        return self.head(torch.cat([self.conv(image).mean((2, 3)), torch.relu(self.fc(features))], 1))


class DictInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 48)
        self.fc1, self.fc2 = nn.Linear(48, 96), nn.Linear(96, 48)
        self.head = nn.Linear(48, 4)

    def forward(self, input_ids, attention_mask):
        h = self.fc2(torch.relu(self.fc1(self.embed(input_ids)))) * attention_mask.unsqueeze(-1)
        return self.head(h.mean(1))


INPUTS = {
    "tuple": (TwoInputs, lambda: (torch.randn(2, 3, 8, 8), torch.randn(2, 48))),
    "dict": (DictInputs, lambda: {"input_ids": torch.randint(0, 50, (2, 6)), "attention_mask": torch.ones(2, 6)}),
}


def call(model, x):
    return model(**x) if isinstance(x, dict) else model(*x)


@pytest.mark.parametrize("form", sorted(INPUTS))
def test_factorize_meets_the_mac_ratio_on_any_inputs(form):
    torch.manual_seed(0)
    cls, make = INPUTS[form]
    model, x = cls().eval(), make()
    shape = call(model, x).shape
    plan = factorize_(model, Factorization(method="svd", mac_ratio=0.6), x)
    assert plan.layers and plan.macs_after <= 0.6 * plan.macs_before
    assert plan.macs_after == count_ops(model, x).macs  # the plan's count is the profiler's
    assert call(model, x).shape == shape


def test_factorize_a_bert():
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                     num_hidden_layers=2, vocab_size=100, max_position_embeddings=64)
    model = transformers.BertModel(config, add_pooling_layer=False).eval()
    x = {"input_ids": torch.randint(0, 100, (2, 8)), "attention_mask": torch.ones(2, 8, dtype=torch.long)}
    plan = factorize_(model, Factorization(method="svd", ranks={"encoder.layer.0.intermediate.dense": 8,
                                                                "encoder.layer.1.output.dense": 8}), x)
    assert sorted(plan.layers) == ["encoder.layer.0.intermediate.dense", "encoder.layer.1.output.dense"]
    assert plan.macs_after < plan.macs_before
    assert model(**x).last_hidden_state.shape == (2, 8, 32)


def test_inputs_that_do_not_match_forward_are_refused_untouched():
    model = DictInputs()
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(DeepslimError, match=r"forward\(input_ids, attention_mask\)") as err:
        factorize_(model, Factorization(method="svd", energy=0.5), {"ids": torch.zeros(2, 6, dtype=torch.long)})
    assert err.value.hint and "\n" not in str(err.value)
    assert model.state_dict().keys() == state.keys()
    assert all(torch.equal(model.state_dict()[k], v) for k, v in state.items())
