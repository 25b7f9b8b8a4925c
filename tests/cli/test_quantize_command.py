import json

import pytest

import deepslim


@pytest.fixture(scope="module")
def trained(synthetic_run):
    return synthetic_run("fmnist-cnn", epochs=2)


@pytest.mark.parametrize("method, deployed", [("qat", True), ("binary", False), ("ternary", False)])
def test_quantize_methods(cli, trained, tmp_path, method, deployed):
    calibration = ("--calibration-images", "64") if method == "qat" else ()  # binary/ternary calibrate nothing
    code, out, _ = cli("quantize", trained, "--method", method, "--finetune-epochs", "1", *calibration,
                       "--out", tmp_path / method, "--json")
    result = json.loads(out)
    assert code == 0 and 0 <= result["accuracy"] <= 100
    assert (tmp_path / method / "model.int8.onnx").is_file() == deployed
    meta = deepslim.load(tmp_path / method).deepslim_metadata
    assert meta["quantization"]["method"] == method and meta["metrics"]["test_accuracy"] == result["accuracy"]
    if not deployed:  # bit-packed weights: far smaller than the float model's file
        assert (tmp_path / method / "weights.safetensors").stat().st_size < 0.5 * (trained / "weights.safetensors").stat().st_size


def test_low_bit_ptq_is_simulated_and_bad_bits_refused(cli, trained, tmp_path):
    code, out, _ = cli("quantize", trained, "--bits", "4", "--calibration-images", "64", "--out", tmp_path / "q4",
                       "--json")
    assert code == 0 and not (tmp_path / "q4" / "model.int8.onnx").exists()
    code, _, err = cli("quantize", trained, "--bits", "9", "--out", tmp_path / "q9")
    assert code == 2 and "outside 1-8" in err
    code, _, err = cli("quantize", trained, "--keep-float", "nope", "--out", tmp_path / "qx")
    assert code == 2 and "no layer 'nope'" in err


def test_adaround_ptq_rounds_once_for_both_paths_and_reports(cli, trained, tmp_path):
    code, out, _ = cli("quantize", trained, "--rounding", "adaround", "--adaround-iterations", "10",
                       "--calibration-images", "64", "--out", tmp_path / "ada", "--json")
    result = json.loads(out)
    assert code == 0 and (tmp_path / "ada" / "model.int8.onnx").is_file()
    assert result["adaround"]["layers_rounded"] == 5 and result["adaround"]["iterations"] == 10
    assert deepslim.load(tmp_path / "ada").deepslim_metadata["quantization"]["config"]["rounding"] == "adaround"


@pytest.mark.parametrize("argv, message", [
    (("--adaround-iterations", "5"), "--adaround-iterations has no effect without --rounding adaround"),
    (("--rounding", "adaround", "--adaround-iterations", "0"), "iterations must be a positive integer"),
    (("--rounding", "adaround", "--calibration-images", "16"), "at least 64 calibration samples, got 16"),
    (("--method", "qat", "--rounding", "adaround"), "post-training method"),
])
def test_adaround_bad_options_are_refused(cli, trained, tmp_path, argv, message):
    code, _, err = cli("quantize", trained, *argv, "--out", tmp_path / "bad")
    assert code == 2 and message in err and not (tmp_path / "bad").exists()
