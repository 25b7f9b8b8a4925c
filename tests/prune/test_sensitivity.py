import copy

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.prune import prune_to_budget, ratios_for_budget, sensitivity_scan

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
    assert trial(X).shape == (1, 10)


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
    code, out, _ = cli("sensitivity", tmp_path / "m", "--ratios", "0.5", "--layers", "stem.0,stages.0.0.conv1")
    assert code == 0 and "stages.0.0.conv1" in out and (tmp_path / "m" / "sensitivity" / "sensitivity.png").is_file()
    code, _, err = cli("sensitivity", tmp_path / "m", "--ratios", "1.5")
    assert code == 2 and "must be numbers in (0, 1)" in err
