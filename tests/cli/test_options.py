"""Every option acts or is refused; --mac-ratio is the fraction of MACs kept; --subset is used, said and recorded."""

import json

import pytest
import torch

import deepslim


@pytest.fixture(scope="module")
def trained(synthetic_run):
    return synthetic_run("resnet8")


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


@pytest.mark.parametrize("command, extra, message, fix", [
    # the three silent ignores of the issue
    ("prune", ("--method", "magnitude", "--ratio", "0.8"), "--ratio does not apply to --method magnitude", "--sparsity"),
    ("prune", ("--method", "nm", "--sparsity", "0.9"), "--sparsity does not apply to --method nm", "--n N --m M"),
    ("prune", ("--method", "magnitude", "--mac-ratio", "0.5"), "--mac-ratio does not apply", "--sparsity"),
    ("prune", ("--method", "nm", "--mac-ratio", "0.5"), "--mac-ratio does not apply", "--n N --m M"),
    ("prune", ("--step", "0.1"), "--step does not apply to --method channel", "--method adaptive"),
    ("prune", ("--method", "adaptive", "--global-ranking"), "--global-ranking does not apply", "--round-to"),
    ("prune", ("--ratio", "0.3", "--mac-ratio", "0.5"), "--ratio and --mac-ratio both", "give one"),
    ("prune", ("--lr", "0.1"), "--lr has no effect without --finetune-epochs", "add --finetune-epochs"),
    ("prune", ("--distill",), "--distill has no effect without --finetune-epochs", "add --finetune-epochs"),
    ("prune", ("--finetune-epochs", "1", "--kd-alpha", "0.5"), "--kd-alpha has no effect without --distill",
     "add --distill"),
    ("factorize", ("--energy", "0.9", "--selection", "sensitivity"), "--selection has no effect without --mac-ratio",
     "--energy"),
    ("factorize", ("--energy", "0.9", "--force-form", "constant"), "--force-form has no effect without --force-reg",
     "--force-epochs"),
    ("factorize", ("--energy", "0.9", "--lr", "0.1"), "--lr has no effect without --finetune-epochs or --force-epochs",
     "learning rate"),
    ("quantize", ("--method", "binary", "--bits", "4"), "--bits does not apply to --method binary", "ptq or qat"),
    ("quantize", ("--method", "ternary", "--binary-activations"), "--binary-activations does not apply",
     "--method binary"),
    ("quantize", ("--finetune-epochs", "2"), "--finetune-epochs does not apply to --method ptq", "--method qat"),
    ("quantize", ("--device", "cpu"), "--device does not apply to --method ptq", "on the CPU"),
    ("quantize", ("--observer", "mse", "--percentile", "99.9"), "--percentile has no effect without --observer percentile",
     "does not use a percentile"),
    ("quantize", ("--method", "qat", "--epochs", "0"), "--finetune-epochs 0 must be >= 1", "--finetune-epochs 1"),
    ("prune", ("--model-arg", "widths=8,16,32"), "--model-arg has no effect here", "a shipped baseline"),
    ("prune", ("--method", "adaptive", "--importance", "taylor"), "--importance taylor does not apply", "l2"),
])
def test_options_that_would_not_act_are_refused(cli, trained, tmp_path, command, extra, message, fix):
    code, _, err = cli("--quiet", command, trained, *extra, "--out", tmp_path / "x")
    line = _one_line(err)
    assert code == 2 and message in line and fix in line.split(" — ", 1)[1]
    assert not (tmp_path / "x").exists()


def test_distill_refuses_hint_options_without_a_hint(cli, trained, tmp_path):
    code, _, err = cli("distill", "--teacher", trained, "--student", "lenet5", "--data", "synthetic",
                       "--hint-weight", "2", "--out", tmp_path / "s")
    assert code == 2 and "--hint-weight has no effect without --hint" in _one_line(err)


@pytest.mark.parametrize("method, extra, tolerance", [
    # A uniform ratio moves every layer's integer channel count at once, so the kept fraction moves in
    # steps; the search returns the step closest to the target from below. For resnet8 (16/32/64
    # channels) near half the MACs that step is well under 5% of the model's MACs.
    ("channel", (), 0.05),
    # adaptive removes --step of the original MACs per step: it ends less than one step below the target.
    # (--subset: fewer validation images to judge each step on, so the test stays fast)
    ("adaptive", ("--step", "0.1", "--subset", "240"), 0.1),
])
def test_mac_ratio_is_the_fraction_of_macs_kept(cli, trained, tmp_path, method, extra, tolerance):
    code, out, _ = cli("prune", trained, "--method", method, "--mac-ratio", "0.5", *extra, "--out", tmp_path / "p",
                       "--json")
    assert code == 0
    x = torch.randn(1, 1, 28, 28)
    before = deepslim.profile(deepslim.load(trained), x).macs
    after = deepslim.profile(deepslim.load(tmp_path / "p"), x).macs  # the saved model, measured afresh
    assert 0.5 - tolerance <= after / before <= 0.5
    result = json.loads(out)
    assert result["mac_ratio"] == 0.5 and result["macs_after"] == after
    assert deepslim.load(tmp_path / "p").deepslim_metadata["pruning"]["mac_ratio"] == 0.5


@pytest.mark.parametrize("command, extra, key", [
    ("prune", ("--finetune-epochs", "1"), "pruning"),
    ("factorize", ("--energy", "0.9", "--finetune-epochs", "1"), "factorization"),
    ("quantize", ("--method", "qat", "--finetune-epochs", "1", "--calibration-images", "64"), "quantization"),
])
def test_subset_limits_the_training_images_and_is_said_and_recorded(cli, trained, tmp_path, command, extra, key):
    code, _, err = cli(command, trained, *extra, "--subset", "240", "--out", tmp_path / "m")
    assert code == 0
    # synthetic's pool is 1,200 images; --subset 240 keeps 240, of which 1/12 become validation images
    assert "220 training images of synthetic (--subset 240)" in err and "20 validation images" in err
    assert "fine-tuning 1 epoch on 220 training images" in err or "training for 1 epoch on 220 training images" in err
    if command != "quantize":
        assert "re-estimating BatchNorm statistics on 220 training images of synthetic" in err
    meta = deepslim.load(tmp_path / "m").deepslim_metadata
    assert meta[key]["data"] == {"name": "synthetic", "subset": 240, "train_images": 220, "val_images": 20}
    assert meta[key]["command"].startswith(f"deepslim {command} ") and "--subset 240" in meta[key]["command"]
    assert meta["metrics"]["test_images"] == 400  # the test split stays whole


def test_without_subset_all_training_images_are_used(cli, trained, tmp_path):
    code, _, err = cli("prune", trained, "--ratio", "0.25", "--out", tmp_path / "m")
    assert code == 0 and "all 1,100 training images of synthetic" in err
    meta = deepslim.load(tmp_path / "m").deepslim_metadata
    assert meta["pruning"]["data"] == {"name": "synthetic", "subset": None, "train_images": 1100, "val_images": 100}


def test_old_flag_spellings_still_work(cli, trained, tmp_path):
    from deepslim.cli import build_parser

    args = build_parser().parse_args(["quantize", "DIR", "--out", "o", "--epochs", "3", "--calib", "64"])
    assert args.finetune_epochs == 3 and args.calibration_images == 64
    args = build_parser().parse_args(["distill", "--teacher", "T", "--student", "lenet5", "--data", "synthetic",
                                      "--out", "o", "--temperature", "2", "--alpha", "0.5"])
    assert args.kd_temperature == 2 and args.kd_alpha == 0.5
    code, _, err = cli("quantize", trained, "--method", "qat", "--epochs", "0", "--out", tmp_path / "q")
    assert code == 2 and "note: --epochs is the old spelling of --finetune-epochs" in err
