"""Layer dropping removes whole encoder layers (Hugging Face BERT, nn.TransformerEncoder): the stack is
shorter, the counts the model reads follow, outputs keep their shape, greedy_loss picks what a brute-force
search picks, and the model saves and loads back at its new depth."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deepslim
from deepslim.core import Config, DeepslimError
from deepslim.core.inputs import call_model, split_batch
from deepslim.pipeline import TECHNIQUES, parse_recipe
from deepslim.prune import LayerDropping, drop_layers, layer_stacks, prune_


class Encoder(nn.Module):
    """nn.TransformerEncoder (no dropout, so evaluation is exact) under a mean-pooled classifier head."""

    def __init__(self, dim: int = 8, layers: int = 4, classes: int = 3):
        super().__init__()
        self.dim, self.layers, self.classes = dim, layers, classes
        block = nn.TransformerEncoderLayer(dim, 2, 16, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.head = nn.Linear(dim, classes)

    def forward(self, x):
        return self.head(self.encoder(x).mean(1))


def _encoder(layers: int = 4) -> Encoder:
    torch.manual_seed(0)
    model = Encoder(layers=layers).eval()
    with torch.no_grad():  # layers that differ clearly, so the greedy choice is not a near-tie
        for i, layer in enumerate(model.encoder.layers):
            layer.linear2.weight.mul_(1.0 + i)
    return model


def _batches(n: int = 3):
    g = torch.Generator().manual_seed(1)
    return [(torch.randn(6, 5, 8, generator=g), torch.randint(0, 3, (6,), generator=g)) for _ in range(n)]


def _tiny_bert_case():
    pytest.importorskip("transformers")
    from deepslim.testing_models import model_cases

    return model_cases()["tiny_bert"]


@torch.no_grad()
def _ce(model: nn.Module, batches) -> float:
    return sum(float(F.cross_entropy(call_model(model, x), y, reduction="sum")) for x, y in batches)


def _without(model: nn.Module, index: int) -> nn.Module:
    copy_ = copy.deepcopy(model)
    copy_.encoder.layers = nn.ModuleList(m for i, m in enumerate(copy_.encoder.layers) if i != index)
    return copy_


def test_greedy_loss_matches_brute_force():
    model, batches = _encoder(4), _batches()
    # brute force, round by round: remove each remaining layer of a copy and keep the cheapest removal
    reference, originals, expected = copy.deepcopy(model), list(range(4)), []
    for _ in range(2):
        losses = {originals[i]: _ce(_without(reference, i), batches) for i in range(len(originals))}
        worst = min(losses, key=lambda i: (losses[i], -i))
        reference = _without(reference, originals.index(worst))
        originals.remove(worst)
        expected.append(worst)
    plan = prune_(model, LayerDropping(keep_layers=2), example_inputs=batches[0][0], data=batches)
    info = plan.layers["encoder.layers"]
    assert [r["dropped"] for r in info["rounds"]] == expected
    assert info["kept"] == originals and len(model.encoder.layers) == 2
    assert model.encoder.num_layers == 2
    x = batches[0][0]
    assert torch.allclose(model(x), reference(x), atol=1e-6)
    assert plan.params_after < plan.params_before and plan.macs_after < plan.macs_before


def test_positional_selection_and_explicit_drop():
    x = _batches(1)[0][0]
    for cfg, kept in ((LayerDropping(keep_layers=1, selection="last"), [0]),
                      (LayerDropping(keep_layers=3, selection="first"), [1, 2, 3]),
                      (LayerDropping(drop_layers=[0, 2]), [1, 3])):
        model = _encoder(4)
        layers = list(model.encoder.layers)
        info = drop_layers(model, cfg)["encoder.layers"]
        assert info["kept"] == kept and [m for m in model.encoder.layers] == [layers[i] for i in kept]
        assert model(x).shape == (6, 3)


def test_greedy_without_data_stays_close_to_the_unpruned_outputs():
    model = _encoder(4)
    x = _batches(1)[0][0]
    info = drop_layers(model, LayerDropping(keep_layers=3), example_inputs=x)["encoder.layers"]
    rounds = info["rounds"][0]
    assert rounds["loss"] == min(rounds["losses"].values()) and len(model.encoder.layers) == 3


def test_tiny_bert_drops_to_k_and_saves_and_loads(tmp_path):
    case = _tiny_bert_case()
    model = case.fresh()
    plan = prune_(model, LayerDropping(keep_layers=1), example_inputs=case.example, data=case.batches)
    assert list(plan.layers) == ["bert.encoder.layer"] and plan.layers["bert.encoder.layer"]["after"] == 1
    assert len(model.bert.encoder.layer) == 1 and model.bert.config.num_hidden_layers == 1
    assert model.num_layers == 1
    out = model(**case.example)
    assert out.shape == (2, 2)
    deepslim.save(model, tmp_path / "artifact", allow_modules=case.allow_modules)
    loaded = deepslim.load(tmp_path / "artifact", allow_modules=case.allow_modules)
    assert len(loaded.bert.encoder.layer) == 1
    assert torch.equal(loaded.eval()(**case.example), out)


def test_tiny_bert_greedy_with_an_embedding_task():
    case = _tiny_bert_case()
    model, teacher = case.fresh(), case.fresh()
    inputs = [split_batch(b)[0] for b in case.batches]
    prune_(model, LayerDropping(keep_layers=1), example_inputs=case.example, data=inputs,
           task=deepslim.EmbeddingMatch("cosine", teacher=teacher))
    assert len(model.bert.encoder.layer) == 1 and len(teacher.bert.encoder.layer) == 2


def test_stacks_are_found_and_models_without_one_are_refused():
    assert list(layer_stacks(_encoder(3))) == ["encoder.layers"]
    cnn = deepslim.create_model("resnet8")
    state = {k: v.clone() for k, v in cnn.state_dict().items()}
    with pytest.raises(DeepslimError) as err:
        prune_(cnn, LayerDropping(keep_layers=1), example_inputs=torch.randn(1, 1, 28, 28))
    assert "\n" not in str(err.value) and "ModuleList" in str(err.value) and err.value.hint
    assert all(torch.equal(v, cnn.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize("kwargs", [dict(keep_layers=0), dict(keep_layers=1.5), dict(keep_layers=2, drop_layers=[1]),
                                    dict(drop_layers=[]), dict(drop_layers=[-1]), dict(drop_layers=[1, 1]),
                                    dict(drop_layers="1"), dict(selection="middle"), dict(stack="")])
def test_bad_config_values_are_refused(kwargs):
    with pytest.raises(DeepslimError):
        LayerDropping(**kwargs)


@pytest.mark.parametrize("cfg, words", [(LayerDropping(keep_layers=5), "only 4"),
                                        (LayerDropping(drop_layers=[4]), "layer 4"),
                                        (LayerDropping(drop_layers=[0, 1, 2, 3]), "every layer"),
                                        (LayerDropping(stack="head"), "not a layer stack")])
def test_configs_the_model_cannot_take_are_refused_untouched(cfg, words):
    model = _encoder(4)
    with pytest.raises(DeepslimError, match=words):
        drop_layers(model, cfg)
    assert len(model.encoder.layers) == 4


def test_config_round_trips_and_is_a_recipe_technique():
    cfg = LayerDropping(drop_layers=[4, 5])
    assert Config.from_dict(cfg.to_dict()) == cfg
    assert TECHNIQUES["layer_dropping"].config is LayerDropping
    recipe = parse_recipe("stages:\n  - technique: layer_dropping\n    keep_layers: 4\n    selection: last\n")
    assert recipe.stages[0].config == LayerDropping(keep_layers=4, selection="last")
