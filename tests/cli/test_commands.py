"""The CLI end to end on synthetic data (fast) and, when installed, Fashion-MNIST."""

import json

import pytest


def test_no_command_prints_help(cli):
    code, out, _ = cli()
    assert code == 2 and "train" in out and "zoo" in out


def test_zoo_lists_every_model_and_data_set(cli):
    from deepslim import list_datasets, list_models

    code, out, _ = cli("zoo")
    assert code == 0
    for name in list_models() + list_datasets():
        assert name in out
    code, out, _ = cli("zoo", "--json")
    data = json.loads(out)
    assert {m["name"] for m in data["models"]} == set(list_models())


def test_train_eval_export_on_synthetic(cli, tmp_path):
    out = tmp_path / "run"
    code, stdout, _ = cli("train", "--model", "lenet5", "--data", "synthetic", "--epochs", "2", "--batch-size", "32",
                          "--lr", "0.05", "--out", out, "--quiet")
    assert code == 0 and "accuracy:" in stdout
    assert (out / "MODEL_CARD.md").is_file() and not (out / "checkpoint" / "last.pt").exists()
    code, stdout, _ = cli("eval", out, "--json")
    result = json.loads(stdout)
    assert code == 0 and result["test_images"] == 400 and result["accuracy"] > 50
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["metrics"]["test_accuracy"] == pytest.approx(result["accuracy"])
    assert meta["training"]["config"]["epochs"] == 2
    code, stdout, _ = cli("export", out, "--onnx")
    assert code == 0 and (out / "model.onnx").is_file()
    code, _, err = cli("export", out, "--onnx")
    assert code == 2 and "already exists" in err


def test_out_holding_a_run_is_refused_then_overwritten(cli, tmp_path):
    out = tmp_path / "run"
    args = ("train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1", "--batch-size", "32", "--out", out,
            "--quiet")
    assert cli(*args)[0] == 0
    before = (out / "weights.safetensors").read_bytes()
    code, _, err = cli(*args)
    assert code == 2 and err.startswith("error:") and "--overwrite" in err and len(err.strip().splitlines()) == 1
    assert (out / "weights.safetensors").read_bytes() == before
    assert cli(*args, "--overwrite")[0] == 0


def test_interrupted_run_asks_for_resume(cli, tmp_path):
    out = tmp_path / "run"
    (out / "checkpoint").mkdir(parents=True)
    (out / "checkpoint" / "last.pt").write_bytes(b"partial")
    code, _, err = cli("train", "--model", "lenet5", "--data", "synthetic", "--out", out)
    assert code == 2 and "--resume" in err
    code, _, err = cli("train", "--model", "lenet5", "--data", "synthetic", "--out", out, "--resume", "--quiet")
    assert code == 2 and "corrupt or truncated" in err


@pytest.mark.parametrize("args, message", [
    (("train", "--model", "resnt", "--data", "synthetic", "--out", "X"), "unknown model 'resnt'"),
    (("train", "--model", "lenet5", "--data", "mnist-fashion", "--out", "X"), "unknown data set"),
    (("train", "--model", "lenet5", "--data", "fashion-mnist", "--data-dir", "/nonexistent", "--out", "X"),
     "apt-get install -y dataset-fashion-mnist"),
    (("train", "--model", "lenet5", "--model-arg", "widht=3", "--data", "synthetic", "--out", "X"), "no option"),
    (("eval", "/nonexistent/run"), "is not a folder"),
])
def test_bad_input_is_one_error_line(cli, tmp_path, args, message):
    args = [str(tmp_path / a) if a == "X" else a for a in args]
    code, _, err = cli(*args)
    assert code == 2
    assert err.startswith("error:") and message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_wrong_input_shape_is_reported(cli, tmp_path):
    out = tmp_path / "run"
    assert cli("train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1", "--batch-size", "32",
               "--out", out, "--quiet")[0] == 0
    code, _, err = cli("export", out, "--onnx", "--input-shape", "1,3,28,28")
    assert code == 2 and "does not accept inputs of shape (1, 3, 28, 28)" in err


def test_acceptance_lenet5_on_fashion_mnist_subset(cli, tmp_path, fashion_mnist_dir):
    out = tmp_path / "r"
    code, stdout, _ = cli("train", "--model", "lenet5", "--data", "fashion-mnist", "--epochs", "1", "--subset", "2000",
                          "--out", out, "--quiet")
    assert code == 0
    code, stdout, _ = cli("eval", out)
    assert code == 0 and stdout.startswith("accuracy: ") and "10000 fashion-mnist test images" in stdout


def test_a_model_name_given_as_the_folder_points_to_model(cli, tmp_path):
    code, _, err = cli("quantize", "fmnist-cnn", "--out", tmp_path / "q")
    assert code == 2 and "fmnist-cnn is not a folder, but it is a model name" in err and "--model fmnist-cnn" in err
