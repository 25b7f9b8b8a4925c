import itertools

import optuna

from deepslim.auto.space import ImageSpace, TextSpace, recipe_text
from deepslim.pipeline.recipe import parse_recipe


def test_every_image_plan_is_a_valid_recipe():
    space = ImageSpace()
    for allocation, round_to, factorize, quantize in itertools.product(
            ["uniform", "global"], [1, 8, 16], ["none", "svd-0.95"], ["ptq-percentile", "ptq-minmax", "qat", "none"]):
        plan = {"ratio": 0.45, "allocation": allocation, "round_to": round_to, "factorize": factorize,
                "quantize": quantize, "epochs": 14}
        recipe = parse_recipe(recipe_text(space, plan))
        techniques = [s.technique for s in recipe.stages]
        assert techniques[0] == "channel_pruning"
        assert recipe.stages[0].config.ratio == 0.45
        assert recipe.stages[0].config.global_ranking == (allocation == "global")
        assert recipe.stages[0].config.round_to == (round_to if round_to > 1 else None)
        assert ("factorize" in techniques) == (factorize != "none")
        assert techniques[-1] == {"qat": "qat", "none": techniques[-1]}.get(quantize, "quantize")
        trained = [s for s in recipe.stages if s.technique != "qat" and s.finetune.epochs]
        assert len(trained) == 1 and trained[0].finetune.epochs == 14 and trained[0].finetune.distill


def test_proxy_epochs_override_the_plan():
    plan = {"ratio": 0.5, "allocation": "uniform", "round_to": 8, "factorize": "none", "quantize": "none", "epochs": 20}
    recipe = parse_recipe(recipe_text(ImageSpace(), plan, epochs=2))
    assert recipe.stages[0].finetune.epochs == 2
    assert recipe.description == "prune 50% uniform (round 8), KD 20 ep, float32"


def test_text_plans_are_valid_recipes():
    space = TextSpace(layers=6)
    for keep, ffn, heads, quantize in itertools.product([2, 6], [0.0, 0.25], [0.0, 0.5],
                                                        ["dynamic-embeddings", "dynamic", "none"]):
        plan = {"keep_layers": keep, "ffn_ratio": ffn, "head_ratio": heads, "quantize": quantize, "epochs": 2}
        recipe = parse_recipe(recipe_text(space, plan))
        techniques = [s.technique for s in recipe.stages]
        assert ("layer_dropping" in techniques) == (keep < 6)
        assert ("quantize_dynamic" in techniques) == (quantize != "none")
        assert sum(s.finetune.epochs for s in recipe.stages) == (2 if (keep < 6 or ffn or heads or quantize == "none")
                                                                  else 0)


def test_suggestions_cover_the_declared_choices():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        plan = ImageSpace().suggest(trial)
        assert 0.3 <= plan["ratio"] <= 0.75
        seen.add(plan["quantize"])
        study.tell(trial, 0.0)
    assert seen == {"ptq-percentile", "ptq-minmax", "qat", "none"}


def test_block_dropping_is_searched_only_for_models_with_droppable_blocks():
    import torch

    import deepslim
    from deepslim.auto.space import space_for

    example = torch.zeros(1, 1, 28, 28)
    assert space_for(deepslim.create_model("resnet8"), "classification", example).blocks == 1
    assert space_for(deepslim.create_model("resnet20"), "classification", example).blocks == 7
    assert space_for(deepslim.create_model("lenet5"), "classification", example).blocks == 0
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    dropped = set()
    for _ in range(30):
        trial = study.ask()
        plan = ImageSpace(blocks=7).suggest(trial)
        dropped.add(plan["drop_blocks"])
        assert "drop_blocks" not in ImageSpace(blocks=0).suggest(study.ask())
        study.tell(trial, 0.0)
    assert dropped == {0, 1, 2, 3}  # at most half of the droppable blocks


def test_a_plan_dropping_blocks_drops_them_first():
    plan = {"drop_blocks": 1, "ratio": 0.5, "allocation": "uniform", "round_to": 8, "factorize": "none",
            "quantize": "ptq-percentile", "epochs": 14}
    recipe = parse_recipe(recipe_text(ImageSpace(blocks=1), plan))
    assert [s.technique for s in recipe.stages] == ["block_dropping", "channel_pruning", "quantize"]
    assert recipe.stages[0].config.blocks == 1 and recipe.stages[1].finetune.epochs == 14
    assert recipe.description == "drop 1 block, prune 50% uniform (round 8), KD 14 ep, int8 PTQ percentile"


def _stage_settings(recipe) -> list[tuple]:
    """What a recipe's stages do (technique, settings, fine-tune), names and comments aside."""
    return [(s.technique, s.config, s.finetune) for s in recipe.stages]


def test_starting_plans_are_the_shipped_recipes():
    from pathlib import Path

    from deepslim.pipeline.recipe import load_recipe

    root = Path(__file__).resolve().parents[2]
    spaces = [ImageSpace(), ImageSpace(blocks=1), TextSpace(layers=6)]
    named = set()
    for space in spaces:
        for name, plan in space.starting_plans().items():
            named.add(name)
            shipped = load_recipe(root / name)
            assert _stage_settings(parse_recipe(recipe_text(space, plan))) == _stage_settings(shipped), name
    assert named == {"recipes/prune-quantize.yaml", "recipes/drop-prune-quantize.yaml",
                     "recipes/minilm-search.yaml", "recipes/minilm-search-ffn25.yaml"}
    assert list(ImageSpace().starting_plans()) == ["recipes/prune-quantize.yaml"]  # no block to drop
    assert TextSpace(layers=1).starting_plans() == {}  # no layer to drop
    drop = ImageSpace(blocks=1).starting_plans()["recipes/drop-prune-quantize.yaml"]
    assert ImageSpace(blocks=1).describe(drop).startswith("drop 1 block, prune 37.5% uniform (round 8), KD 20 ep")
    assert ImageSpace(ratio_low=0.6).starting_plans() == {}  # outside the searched ratios


def test_starting_plans_run_first_in_a_new_study():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    space = ImageSpace(blocks=1)
    for name, plan in space.starting_plans().items():
        study.enqueue_trial(plan, user_attrs={"starting_plan": name})
    for name, plan in space.starting_plans().items():
        trial = study.ask()
        assert space.suggest(trial) == plan and trial.user_attrs["starting_plan"] == name
        study.tell(trial, 0.0)
