"""prune_ and the measured searches take any form of inputs: a tuple (positional) or a dict (keyword);
bad inputs get one clear error and leave the model untouched."""

import copy

import pytest
import torch
from torch import nn

import deepslim
from deepslim import EmbeddingMatch
from deepslim.core import DeepslimError
from deepslim.prune import ChannelPruning, FFNPruning, MagnitudePruning, coupled_groups, prune_
from deepslim.prune.budget import uniform_ratio_for_macs


class TwoInputs(nn.Module):
    """A conv branch for an image and an MLP branch for a feature vector, joined by a head."""

    def __init__(self):
        super().__init__()
        self.conv1, self.conv2 = nn.Conv2d(1, 16, 3, padding=1), nn.Conv2d(16, 16, 3, padding=1)
        self.fc1, self.fc2 = nn.Linear(6, 32), nn.Linear(32, 16)
        self.head = nn.Linear(32, 3)

    def forward(self, image, features):
        x = torch.relu(self.conv2(torch.relu(self.conv1(image)))).mean((2, 3))
        return self.head(torch.cat([x, self.fc2(torch.relu(self.fc1(features)))], 1))


class DictInputs(nn.Module):
    """Token embeddings, masked mean, two-layer MLP: called as model(**{"input_ids", "attention_mask"})."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.fc1, self.fc2, self.out = nn.Linear(16, 64), nn.Linear(64, 32), nn.Linear(32, 8)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        pooled = (self.embed(input_ids) * mask).sum(1) / mask.sum(1)
        return self.out(torch.relu(self.fc2(torch.relu(self.fc1(pooled)))))


class PooledConcat(nn.Module):
    """A multi-modal head: pooled, flattened image features concatenated with a feature branch."""

    def __init__(self):
        super().__init__()
        self.conv, self.pool, self.side = nn.Conv2d(1, 8, 3), nn.AdaptiveAvgPool2d(1), nn.Linear(6, 16)
        self.head = nn.Linear(24, 3)

    def forward(self, image, features):
        return self.head(torch.cat([self.pool(self.conv(image)).flatten(1), torch.relu(self.side(features))], 1))


class TiedWithBuffers(nn.Module):
    """The output layer shares the embedding's weight; a positional table buffer is added to the embeddings."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(40, 16)
        self.register_buffer("positions", 0.1 * torch.randn(12, 16))
        self.register_buffer("steps", torch.zeros((), dtype=torch.long), persistent=False)
        self.fc1, self.fc2 = nn.Linear(16, 32), nn.Linear(32, 16)
        self.decoder = nn.Linear(16, 40, bias=False)
        self.decoder.weight = self.embed.weight

    def forward(self, ids):
        h = (self.embed(ids) + self.positions[: ids.shape[1]]).mean(1)
        return self.decoder(h + self.fc2(torch.relu(self.fc1(h))))


class ReturnsText(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return {"logits": self.fc(x), "label": "cat"}


def two_inputs(n=2):
    return torch.randn(n, 1, 8, 8), torch.randn(n, 6)


def dict_inputs(n=2):
    return {"input_ids": torch.randint(0, 50, (n, 7)), "attention_mask": torch.ones(n, 7, dtype=torch.long)}


def same_state(model, state) -> bool:
    now = model.state_dict()
    return now.keys() == state.keys() and all(torch.equal(now[k], v) for k, v in state.items())


CASES = {"tuple": (TwoInputs, two_inputs), "dict": (DictInputs, dict_inputs)}


def call(model, x):
    return model(**x) if isinstance(x, dict) else model(*x)


@pytest.mark.parametrize("form", sorted(CASES))
@pytest.mark.parametrize("config", [ChannelPruning(ratio=0.5), ChannelPruning(ratio=0.5, importance="taylor"),
                                    FFNPruning(ratio=0.5)], ids=["l2", "taylor", "ffn"])
def test_structured_pruning_takes_tuples_and_dicts(form, config):
    torch.manual_seed(0)
    cls, inputs = CASES[form]
    model, x = cls().eval(), inputs()
    shape = call(model, x).shape
    data = (inputs(8), torch.randint(0, 3, (8,))) if form == "tuple" else \
        (inputs(8), torch.randn(8, 8))
    task = None if form == "tuple" else EmbeddingMatch("mse")  # an embedding model: no classes
    plan = prune_(model, config, example_inputs=x, data=data, task=task)
    assert plan.macs_after < plan.macs_before and plan.params_after < plan.params_before
    assert call(model, x).shape == shape
    if isinstance(config, FFNPruning):
        assert plan.ffn_blocks == ({"fc1": "fc2"} if form == "tuple" else {"fc1": "fc2", "fc2": "out"})


def test_unstructured_pruning_counts_macs_of_any_inputs():
    model = DictInputs()
    plan = prune_(model, MagnitudePruning(sparsity=0.5), example_inputs=dict_inputs())
    assert plan.macs_before == plan.macs_after > 0


def test_measured_searches_take_tuples():
    torch.manual_seed(0)
    model, x = TwoInputs().eval(), two_inputs()
    groups = coupled_groups(model, x)
    assert {"conv1", "conv2", "fc1"} <= set(groups)
    macs = prune_(copy.deepcopy(model), ChannelPruning(ratio=0.0), example_inputs=x).macs_before
    ratio = uniform_ratio_for_macs(model, 0.6 * macs, x, iterations=4, high=0.9)
    assert ratio is not None
    assert prune_(model, ChannelPruning(ratio=ratio), example_inputs=x).macs_after <= 0.6 * macs


def test_pooled_features_concatenated_with_another_input_prune_consistently():
    torch.manual_seed(0)
    model, x = PooledConcat().eval(), two_inputs()
    x = (torch.randn(2, 1, 8, 8), x[1])
    plan = prune_(model, ChannelPruning(ratio=0.5), example_inputs=x)
    assert (model.conv.out_channels, model.side.out_features, model.head.in_features) == (4, 8, 12)
    assert model(*x).shape == (2, 3) and plan.macs_after < plan.macs_before


def test_widths_that_meet_a_buffer_are_kept_and_the_model_still_saves(tmp_path):
    torch.manual_seed(0)
    model, ids = TiedWithBuffers().eval(), torch.randint(0, 40, (2, 8))
    plan = prune_(model, ChannelPruning(ratio=0.5), example_inputs=ids)
    assert set(plan.layers) == {"fc1", "fc2"} and model.fc1.out_features == 16  # the FFN hidden width shrank
    assert model.positions.shape == (12, 16) and model.embed.weight.shape == (40, 16)  # the one the table meets not
    assert model.decoder.weight is model.embed.weight
    assert list(model.state_dict()) == ["positions", "embed.weight", "fc1.weight", "fc1.bias", "fc2.weight",
                                        "fc2.bias", "decoder.weight"]
    assert model(ids).shape == (2, 40) and plan.macs_after < plan.macs_before
    allow = (type(model).__module__,)
    deepslim.save(model, tmp_path / "pruned", allow_modules=allow)
    assert torch.equal(deepslim.load(tmp_path / "pruned", allow_modules=allow)(ids), model(ids))


class Tied(nn.Module):
    """Weight tying without buffers: the embedding width may shrink, on both users of the shared weight."""

    def __init__(self):
        super().__init__()
        self.embed, self.fc1, self.fc2 = nn.Embedding(40, 16), nn.Linear(16, 32), nn.Linear(32, 16)
        self.decoder = nn.Linear(16, 40, bias=False)
        self.decoder.weight = self.embed.weight

    def forward(self, ids):
        h = self.embed(ids).mean(1)
        return self.decoder(h + self.fc2(torch.relu(self.fc1(h))))


def test_a_pruned_tied_weight_stays_one_parameter():
    torch.manual_seed(0)
    model, ids = Tied().eval(), torch.randint(0, 40, (2, 8))
    plan = prune_(model, ChannelPruning(ratio=0.5), example_inputs=ids)
    assert model.decoder.weight is model.embed.weight and model.embed.weight.shape == (40, 8)
    assert model(ids).shape == (2, 40) and plan.params_after < plan.params_before


@pytest.mark.parametrize("bad, message", [
    ({"input_ids": torch.zeros(2, 7, dtype=torch.long), "mask": torch.ones(2, 7)}, "takes no argument named 'mask'"),
    ((torch.zeros(2, 7, dtype=torch.long),), "attention_mask"),
], ids=["unknown key", "missing argument"])
def test_inputs_that_do_not_match_forward_are_refused_naming_its_parameters(bad, message):
    model = DictInputs()
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(DeepslimError, match=message) as err:
        prune_(model, ChannelPruning(ratio=0.5), example_inputs=bad)
    assert "forward(input_ids, attention_mask)" in str(err.value) and "\n" not in str(err.value)
    assert same_state(model, state)


def test_a_model_returning_non_tensors_is_refused_untouched():
    model = ReturnsText()
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(DeepslimError, match="not tensors") as err:
        prune_(model, ChannelPruning(ratio=0.5), example_inputs=torch.randn(2, 4))
    assert "supported outputs" in err.value.hint
    assert same_state(model, state)


def test_ffn_pruning_refuses_a_model_without_ffn_blocks_untouched():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 36, 3))
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(DeepslimError, match="no feed-forward block"):
        prune_(model, FFNPruning(ratio=0.5), example_inputs=torch.randn(1, 1, 8, 8))
    assert same_state(model, state)


def test_taylor_data_may_be_a_list_of_batches_of_one_structure():
    torch.manual_seed(0)
    model, x = TwoInputs().eval(), two_inputs()
    batches = [(two_inputs(4), torch.randint(0, 3, (4,))) for _ in range(2)]
    assert prune_(model, ChannelPruning(ratio=0.5, importance="taylor"), example_inputs=x, data=batches).layers
    model = DictInputs()
    state = copy.deepcopy(model.state_dict())
    mixed = [(dict_inputs(4), torch.randn(4, 8)), ((dict_inputs(4)["input_ids"],), torch.randn(4, 8))]
    with pytest.raises(DeepslimError, match="different structure"):
        prune_(model, ChannelPruning(ratio=0.5, importance="taylor"), example_inputs=dict_inputs(), data=mixed,
               task=EmbeddingMatch("mse"))
    assert same_state(model, state)
