import copy

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.core.inputs import call_model
from deepslim.prune import prune_to_budget, ratios_for_budget, sensitivity_scan, short_finetune
from deepslim.train.evaluate import top1_accuracy

X = torch.randn(1, 1, 28, 28)


@pytest.fixture(scope="module")
def scanned(trained_resnet8):
    model, data = trained_resnet8
    return model, sensitivity_scan(model, data.val, X, ratios=(0.25, 0.5, 0.75))


def test_scan_covers_every_layer_and_ratio(scanned):
    model, result = scanned
    assert result.layers()[0] == "stem.0" and "fc" not in result.layers()
    for row in result.rows:
        assert row["macs"] < result.baseline_macs
        assert row["drop"] == pytest.approx(result.baseline_accuracy - row["accuracy"])
    assert "stages.0.0.conv1" in result.table()


def test_coupled_layers_share_a_ratio(scanned):
    _, result = scanned
    ratios = ratios_for_budget(result, 0.5 * result.baseline_macs)
    # stages.1.0.conv2 and its shortcut add into the same tensor: they shrink together
    assert ratios.get("stages.1.0.conv2") == ratios.get("stages.1.0.shortcut.0")


@pytest.mark.parametrize("fraction", [0.5, 0.25])
def test_prune_to_budget_meets_the_measured_budget(scanned, fraction):
    model, result = scanned
    trial = copy.deepcopy(model)
    ratios, plan = prune_to_budget(trial, result, fraction * result.baseline_macs, X)
    assert plan.macs_after <= fraction * result.baseline_macs
    assert plan.macs_after > 0.6 * fraction * result.baseline_macs  # not far below either
    assert call_model(trial, X).shape == (1, 10)


def test_budget_errors(scanned):
    model, result = scanned
    with pytest.raises(DeepslimError, match="not below"):
        prune_to_budget(copy.deepcopy(model), result, 2 * result.baseline_macs, X)
    with pytest.raises(DeepslimError, match="no ratios"):
        prune_to_budget(copy.deepcopy(model), result, 1, X)


def test_plot_and_cli(scanned, tmp_path, cli):
    model, result = scanned
    assert result.plot(tmp_path / "s.png").read_bytes()[:4] == b"\x89PNG"
    deepslim.save(model, tmp_path / "m", metadata={"dataset": {"name": "synthetic"}})
    code, out, _ = cli("sensitivity", tmp_path / "m", "--ratios", "0.5", "--layers", "stem.0,stages.0.0.conv1",
                       "--finetune-images", "32")
    assert code == 0 and "stages.0.0.conv1" in out and (tmp_path / "m" / "sensitivity" / "sensitivity.png").is_file()
    code, _, err = cli("sensitivity", tmp_path / "m", "--ratios", "1.5")
    assert code == 2 and "must be numbers in (0, 1)" in err
    code, _, err = cli("sensitivity", tmp_path / "m", "--finetune-images", "-5")
    assert code == 2 and "--finetune-images -5 is negative" in err


def test_coupled_layers_are_scanned_once(scanned):
    _, result = scanned
    rows = {(r["layer"], r["ratio"]): r for r in result.rows}
    for ratio in result.ratios:
        a, b = rows[("stages.1.0.conv2", ratio)], rows[("stages.1.0.shortcut.0", ratio)]
        assert (a["accuracy"], a["macs"]) == (b["accuracy"], b["macs"])


def test_recovery_finetune_is_judged_against_the_same_finetune(trained_resnet8):
    model, data = trained_resnet8
    before = copy.deepcopy(model.state_dict())
    plain = sensitivity_scan(model, data.val, X, ratios=(0.75,), layers=["stages.2.0.conv1"])
    recovered = sensitivity_scan(model, data.val, X, ratios=(0.75,), layers=["stages.2.0.conv1"],
                                 train_data=data.train, finetune_images=64, finetune_lr=0.05)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input model untouched
    row = recovered.rows[0]
    assert row["drop"] == pytest.approx(recovered.baseline_accuracy - row["accuracy"])
    assert row["macs"] == plain.rows[0]["macs"]
    # the reference is the unpruned model after the same fine-tune (same images, same seed)
    control = copy.deepcopy(model)
    short_finetune(control, data.train, 64, lr=0.05)
    assert recovered.baseline_accuracy == top1_accuracy(control, data.val.images, data.val.labels)
    with pytest.raises(DeepslimError, match="needs train_data"):
        sensitivity_scan(model, data.val, X, ratios=(0.5,), finetune_images=64)
