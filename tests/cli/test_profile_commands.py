import json

import pytest


def test_profile_zoo_model_prints_table_and_json(cli):
    code, out, _ = cli("profile", "--model", "lenet5")
    assert code == 0 and "MACs 416,520" in out and "Conv2d" in out
    code, out, _ = cli("profile", "--model", "lenet5", "--json")
    data = json.loads(out)
    assert data["macs"] == 416520 and data["params"] == 61706 and data["layers"]


def test_profile_saved_model_with_latency(cli, tmp_path):
    import deepslim

    deepslim.save(deepslim.create_model("lenet5"), tmp_path / "m", metadata={"input_shape": [1, 1, 28, 28]})
    code, out, _ = cli("profile", tmp_path / "m", "--latency", "--batch-sizes", "2", "--threads", "1", "--json")
    data = json.loads(out)
    assert code == 0
    assert {(r["runtime"], r["batch_size"]) for r in data["latency"]} == {("torch", 2), ("onnxruntime", 2)}
    assert data["size"]["onnx_bytes"] > 0 and data["size"]["artifact_bytes"] > data["size"]["dense_bytes"]
    assert all(e["energy_wh"] > 0 for e in data["energy_per_1000"])


@pytest.mark.parametrize("args, message", [
    (("profile", "--model", "lenet5", "--input-shape", "1,3,28,28"), "failed on inputs of shape (1, 3, 28, 28)"),
    (("profile", "--model", "resnt"), "did you mean 'resnet'"),
    (("profile",), "give either a saved model folder or --model"),
    (("profile", "--model", "lenet5", "--input-shape", "a,b"), "not a list of integers"),
])
def test_profile_bad_input(cli, args, message):
    code, _, err = cli(*args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_cost_estimates_a_run(cli):
    code, out, _ = cli("cost", "--model", "lenet5", "--data", "synthetic", "--epochs", "2", "--batch-size", "32",
                       "--json")
    data = json.loads(out)
    assert code == 0 and data["steps"] == 2 * (data["train_images"] // 32)
    assert data["total_flops"] == pytest.approx(data["flops_per_training_sample"] * data["steps"] * 32)
    assert data["co2e_g"] == pytest.approx(data["energy_kwh"] * data["grid_g_per_kwh"])


def test_chart_writes_a_png(cli, tmp_path):
    import deepslim

    deepslim.save(deepslim.create_model("lenet5"), tmp_path / "m",
                  metadata={"input_shape": [1, 1, 28, 28], "metrics": {"test_accuracy": 88.0}})
    code, out, _ = cli("chart", tmp_path / "m", "--no-pretrained", "--out", tmp_path / "c.png")
    assert code == 0 and (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    deepslim.save(deepslim.create_model("lenet5"), tmp_path / "n")
    code, _, err = cli("chart", tmp_path / "n", "--no-pretrained", "--out", tmp_path / "d.png")
    assert code == 2 and "records no test accuracy" in err
