import json

import deepslim
from deepslim.lowrank import RankPlan


def test_factorize_with_force_regularization_and_finetune(synthetic_run, cli, tmp_path):
    source = synthetic_run("resnet8")
    out = tmp_path / "f"
    code, stdout, _ = cli("--quiet", "factorize", source, "--method", "tucker", "--mac-ratio", "0.5",
                          "--force-reg", "1e-3", "--force-epochs", "1", "--finetune-epochs", "1", "--json",
                          "--out", out)
    summary = json.loads(stdout)
    assert code == 0 and summary["macs_after"] <= 0.5 * summary["macs_before"]
    assert summary["force_epochs"] == 1 and summary["layers"]
    model = deepslim.load(out)
    assert model.deepslim_metadata["factorization"]["accuracy_after"] == summary["accuracy_after"]
    assert RankPlan.load(out / "factorization").macs_after == summary["macs_after"]


def test_factorize_errors(synthetic_run, cli, tmp_path):
    source = synthetic_run("resnet8")
    code, _, err = cli("factorize", source, "--energy", "1.5", "--out", tmp_path / "a")
    assert code == 2 and "energy" in err and "out of range" in err
    code, _, err = cli("factorize", source, "--mac-ratio", "0.001", "--out", tmp_path / "b")
    assert code == 2 and "no ranks reach" in err and "cannot shrink" in err
    code, _, err = cli("factorize", source, "--energy", "0.5", "--layers", "stages.0.0.bn1", "--out", tmp_path / "c")
    assert code == 2 and "not a conv or linear" in err
    code, _, err = cli("factorize", source, "--energy", "0.5", "--force-reg", "1e-3", "--out", tmp_path / "d")
    assert code == 2 and "go together" in err
    assert not any((tmp_path / n).exists() for n in "abcd")
