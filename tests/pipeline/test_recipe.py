import pytest

from deepslim.core import DeepslimError
from deepslim.pipeline import TECHNIQUES, load_recipe, parse_recipe


def test_valid_recipe_and_shipped_recipes_parse():
    recipe = parse_recipe("name: r\nstages:\n  - technique: factorize\n    mac_ratio: 0.5\n    method: tucker\n"
                          "    finetune: {epochs: 2, distill: true}\n  - technique: quantize\n")
    assert [s.technique for s in recipe.stages] == ["factorize", "quantize"]
    assert recipe.stages[0].config.method == "tucker" and recipe.stages[0].finetune.distill
    from pathlib import Path

    shipped = sorted(Path(__file__).parents[2].joinpath("recipes").glob("*.yaml"))
    assert len(shipped) >= 3
    for path in shipped:
        assert load_recipe(path).stages


@pytest.mark.parametrize("text, message", [
    ("stages: [\n", "line 2: recipe is not valid YAML"),
    ("- a\n- b\n", "must be a mapping with a 'stages' list"),
    ("stages:\n  - technique: chanel_pruning\n", "line 2: unknown technique 'chanel_pruning'"),
    ("stages:\n  - technique: channel_pruning\n    ration: 0.3\n", "line 3: channel_pruning has no field 'ration'"),
    ("stages:\n  - technique: channel_pruning\n    ratio: 1.5\n", "line 3: stage channel_pruning: ChannelPruning.ratio"),
    ("stages:\n  - technique: channel_pruning\n    ratio: fast\n", "line 3: channel_pruning.ratio = 'fast' has the wrong type"),
    ("stages:\n  - technique: quantize\n  - technique: factorize\n    energy: 0.9\n", "line 2: 'quantize' produces"),
    ("stages:\n  - technique: quantize\n    finetune: {epochs: 1}\n", "does not train"),
    ("stages:\n  - technique: qat\n", "trains: give it finetune"),
    ("stages:\n  - technique: factorize\n    energy: 0.9\n    finetune: {epoch: 1}\n", "line 4: finetune has no field"),
    ("stages:\n  - technique: factorize\n    energy: 0.9\n    finetune: {epochs: -1}\n", "out of range"),
    ("stages: []\n", "non-empty list"),
    ("stagez: []\n", "unknown top-level key 'stagez' (did you mean 'stages'?"),
    ("stages:\n  - technique: quantize\n    keep: if_fastr\n", "line 3: keep: 'if_fastr' is not a keep rule "
                                                              "(did you mean 'if_faster'?"),
    ("targets: {max_acc_drop: 1}\nstages:\n  - technique: quantize\n",
     "line 1: targets has no field 'max_acc_drop' (did you mean 'max_accuracy_drop'?"),
    ("targets:\n  min_speedup_b1: fast\nstages:\n  - technique: quantize\n",
     "line 2: targets.min_speedup_b1 = 'fast' must be a number >= 0"),
    ("targets: [0.5]\nstages:\n  - technique: quantize\n", "targets must be a mapping"),
])
def test_bad_recipes_name_the_line_and_problem(text, message):
    with pytest.raises(DeepslimError) as info:
        parse_recipe(text)
    assert message in str(info.value)


def test_keep_and_targets_are_read():
    recipe = parse_recipe("targets: {max_accuracy_drop: 0.5, min_speedup_b1: 4}\nstages:\n"
                          "  - technique: channel_pruning\n    ratio: 0.3\n"
                          "  - technique: quantize\n    keep: if_faster\n")
    assert recipe.targets == {"max_accuracy_drop": 0.5, "min_speedup_b1": 4.0}
    assert [s.keep for s in recipe.stages] == ["always", "if_faster"]


def test_every_technique_is_documented():
    assert all(t.summary for t in TECHNIQUES.values())
