"""A recipe's ``finetune.seed``: the same seed repeats a fine-tune exactly, another one changes it."""

import copy
import json

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.pipeline import parse_recipe
from deepslim.pipeline.tasks import ImageTask
from deepslim.testing import tiny_data


def _finetuned(seed: int) -> dict:
    torch.manual_seed(0)
    data = tiny_data(n_train=96)
    model = deepslim.create_model("lenet5")
    recipe = parse_recipe(f"stages:\n  - technique: channel_pruning\n    ratio: 0.3\n"
                          f"    finetune: {{epochs: 1, lr: 0.02, batch_size: 32, seed: {seed}}}\n")
    ImageTask(data, torch.device("cpu")).finetune(model, copy.deepcopy(model), recipe.stages[0].finetune, [])
    return model.state_dict()


def test_the_seed_is_read_and_defaults_to_zero():
    text = "stages:\n  - technique: channel_pruning\n    ratio: 0.3\n    finetune: {epochs: 1%s}\n"
    assert parse_recipe(text % "").stages[0].finetune.seed == 0
    assert parse_recipe(text % ", seed: 3").stages[0].finetune.seed == 3
    for bad in ("-1", str(2**32)):
        with pytest.raises(DeepslimError, match=r"0 <= seed < 2\*\*32"):
            parse_recipe(text % f", seed: {bad}")


def test_same_seed_repeats_the_fine_tune_and_another_seed_changes_it():
    first, again, other = _finetuned(0), _finetuned(0), _finetuned(1)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first if first[k].is_floating_point())


def test_a_compress_run_records_the_seed_and_the_model_card_names_it(tmp_path, fake_compare):
    from deepslim.pipeline import compress

    torch.manual_seed(0)
    data = tiny_data(n_train=96)
    model = deepslim.create_model("lenet5")
    recipe = parse_recipe("stages:\n  - technique: channel_pruning\n    ratio: 0.3\n"
                          "    finetune: {epochs: 1, batch_size: 32, seed: 7}\n")
    metrics = compress(model, data, recipe, tmp_path / "out", device=torch.device("cpu"), latency_seconds=0.05,
                       compare=fake_compare({}))
    assert metrics["stages"][0]["finetune"]["seed"] == 7
    meta = json.loads((tmp_path / "out" / "model" / "metadata.json").read_text())
    assert meta["compression"]["finetune_seeds"] == [7]
    assert "(seed 7)" in (tmp_path / "out" / "model" / "MODEL_CARD.md").read_text()
