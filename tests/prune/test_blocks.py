"""Block dropping replaces whole shape-preserving blocks with nn.Identity: the candidates are the residual
blocks (not the stem, the downsampling blocks or leaf layers), greedy picks what brute force picks, the
dropped model runs, saves and loads back, and bad names get a clear error."""

import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.pipeline import TECHNIQUES, parse_recipe
from deepslim.prune import BlockDropping, drop_blocks, droppable_blocks, prune_
from deepslim.prune.loss import DataLoss

X = torch.randn(4, 1, 28, 28)


def _resnet20():
    torch.manual_seed(0)
    return deepslim.create_model("resnet20").eval()


def test_candidates_are_the_identity_shortcut_blocks():
    model = _resnet20()
    # stage 0: all three blocks keep 16 channels at 28x28; stages 1-2 open with a stride-2 block (not droppable)
    assert droppable_blocks(model, X) == ["stages.0.0", "stages.0.1", "stages.0.2", "stages.1.1", "stages.1.2",
                                          "stages.2.1", "stages.2.2"]
    # one block per stage and widths that double: only the first stage's block keeps its input's shape
    assert droppable_blocks(deepslim.create_model("resnet8"), X) == ["stages.0.0"]


class Residual(nn.Module):
    def __init__(self, width: int = 4):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(width, width), nn.ReLU(), nn.Linear(width, width))

    def forward(self, x):
        return x + self.body(x)


def test_only_residual_blocks_held_once_are_candidates():
    x = torch.randn(8, 4)
    plain = nn.Sequential(nn.Linear(4, 4), nn.Sequential(nn.Linear(4, 4), nn.ReLU()), Residual(), nn.Linear(4, 2))
    assert droppable_blocks(plain, x) == ["2"]  # the plain block keeps the shape but has no skip; leaves never count

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Sequential(Residual())

        def forward(self, x):
            return self.body(self.body(x))

    assert droppable_blocks(Twice(), x) == []  # called twice

    shared = nn.Sequential(Residual(), Residual(), nn.Linear(4, 2))
    shared[1].body[0].weight = shared[0].body[0].weight  # tied to the other block
    assert droppable_blocks(shared, x) == []
    held = nn.Module()
    held.body, held.head = nn.Sequential(Residual(), Residual()), nn.Linear(4, 2)
    held.extra = held.body[0]  # the same module under two names: dropping one leaves it in the model
    held.forward = lambda x: held.head(held.body(x))
    assert droppable_blocks(held, x) == ["body.1"]


def test_mobilenet_candidates_are_its_inverted_residuals():
    model = deepslim.create_model("mobilenetv2").eval()
    found = droppable_blocks(model, X)
    assert found and all(type(model.get_submodule(n)).__name__ == "InvertedResidual" for n in found)
    assert all(model.get_submodule(n).use_residual for n in found)


def test_frozen_batchnorm_stays_frozen():
    model = _resnet20().train()
    model.stem[1].eval()  # a frozen BatchNorm outside every block
    drop_blocks(model, BlockDropping(blocks=1), X, data=[(X, torch.zeros(4, dtype=torch.long))])
    assert model.training and model.stages[2].training and not model.stem[1].training


def test_greedy_matches_brute_force():
    model = _resnet20()
    torch.manual_seed(1)
    data = [(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,)))]
    candidates = droppable_blocks(model, X)
    loss = DataLoss(model, data, None, None)
    originals = {n: model.get_submodule(n) for n in candidates}
    singles = {}
    for name in candidates:
        model.get_submodule(name.rpartition(".")[0])._modules[name.rpartition(".")[2]] = nn.Identity()
        singles[name] = loss()
        model.get_submodule(name.rpartition(".")[0])._modules[name.rpartition(".")[2]] = originals[name]
    info = drop_blocks(model, BlockDropping(blocks=1), X, data=data)
    assert list(info) == [min(singles, key=singles.get)]
    assert info[list(info)[0]]["loss"] == pytest.approx(singles[list(info)[0]])


def test_dropping_two_blocks_shrinks_the_model_and_it_saves_and_loads(tmp_path):
    model = _resnet20()
    data = [(torch.randn(16, 1, 28, 28), torch.randint(0, 10, (16,)))]
    plan = prune_(model, BlockDropping(blocks=2), example_inputs=X, data=data)
    assert plan.structured and plan.macs_after < plan.macs_before and plan.params_after < plan.params_before
    dropped = list(plan.layers)
    assert len(dropped) == 2 and all(isinstance(model.get_submodule(n), nn.Identity) for n in dropped)
    assert [plan.layers[n]["round"] for n in dropped] == [1, 2]
    deepslim.save(model, tmp_path / "m")
    back = deepslim.load(tmp_path / "m").eval()
    assert all(isinstance(back.get_submodule(n), nn.Identity) for n in dropped)
    assert torch.allclose(back(X), model(X), atol=1e-6)


def test_named_blocks_are_dropped_as_given():
    model = _resnet20()
    info = drop_blocks(model, BlockDropping(names=["stages.2.2", "stages.0.1"]), X)
    assert sorted(info) == ["stages.0.1", "stages.2.2"] and "round" not in info["stages.0.1"]
    assert model(X).shape == (4, 10)


@pytest.mark.parametrize("config, message", [
    (BlockDropping(names=["stages.1.0"]), "'stages.1.0', which is not a droppable block"),
    (BlockDropping(blocks=8), "only 7 droppable blocks"),
])
def test_bad_requests_are_refused_by_name(config, message):
    with pytest.raises(DeepslimError, match=message):
        drop_blocks(_resnet20(), config, X)


def test_model_without_blocks_is_refused():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 28 * 28, 10))
    with pytest.raises(DeepslimError, match="no block to drop"):
        prune_(model, BlockDropping(), example_inputs=X)


@pytest.mark.parametrize("kwargs", [{"blocks": 0}, {"names": []}, {"names": ["a", "a"]}, {"names": "stages.0.0"},
                                    {"blocks": 2, "names": ["stages.0.0"]}])
def test_config_validation(kwargs):
    with pytest.raises(DeepslimError):
        BlockDropping(**kwargs)


def test_recipe_stage_names_the_technique():
    assert "block_dropping" in TECHNIQUES
    recipe = parse_recipe("stages:\n  - technique: block_dropping\n    blocks: 1\n"
                          "  - technique: channel_pruning\n    ratio: 0.5\n")
    assert isinstance(recipe.stages[0].config, BlockDropping)



def test_zoo_candidates_match_the_docs():
    assert droppable_blocks(deepslim.create_model("squeezenet"), X) == []  # Fire modules have no skip connection
    assert droppable_blocks(deepslim.create_model("vit-tiny"), X) == ["blocks.0", "blocks.1", "blocks.2", "blocks.3"]
