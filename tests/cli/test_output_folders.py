"""Every output folder is an input: eval, profile, export and chart on quantized, low-bit, sparse
and compress outputs measure what is deployed, and eval records its result for chart."""

import hashlib
import json
import shutil

import pytest

import deepslim
from deepslim.cli import main


def _run(*args):
    assert main([str(a) for a in args]) == 0, args


@pytest.fixture(scope="module")
def outputs(tmp_path_factory):
    """One small trained model and what each command makes of it (about 5 s on 2 cores)."""
    root = tmp_path_factory.mktemp("outputs")
    # A weak model on purpose (80 training images): an accuracy of 100% could not tell two models apart.
    _run("train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1", "--subset", "80", "--batch-size", "16",
         "--out", root / "base", "--quiet")
    _run("--quiet", "quantize", root / "base", "--calib", "64", "--out", root / "int8")
    _run("--quiet", "quantize", root / "base", "--method", "binary", "--out", root / "binary")
    _run("--quiet", "prune", root / "base", "--method", "magnitude", "--sparsity", "0.8", "--out", root / "sparse")
    (root / "int8.yaml").write_text("name: int8\nstages:\n  - technique: quantize\n    name: int8\n")
    _run("--quiet", "compress", root / "base", "--recipe", root / "int8.yaml", "--out", root / "run",
         "--latency-seconds", "0.02")
    return root


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _metadata(folder):
    return json.loads((folder / "metadata.json").read_text())


def test_eval_of_a_compress_folder_is_its_deployed_model_and_is_recorded(cli, outputs):
    run = outputs / "run"
    final = json.loads((run / "metrics.json").read_text())["final"]
    weights = _digest(run / "model" / "weights.safetensors")
    code, out, _ = cli("eval", run, "--json")
    result = json.loads(out)
    assert code == 0 and result["accuracy"] == pytest.approx(final["accuracy"])
    assert result["file"] == str(run / "model.onnx") and result["runtime"] == "model.onnx on onnxruntime"
    assert result["recorded_in"] == str(run / "model" / "metadata.json")
    recorded = _metadata(run / "model")["evaluations"]["onnxruntime"]
    assert recorded["accuracy"] == result["accuracy"] and recorded["test_images"] == 400
    assert recorded["data"] == "synthetic" and recorded["date"][:2] == "20"
    assert _digest(run / "model" / "weights.safetensors") == weights  # only metadata.json is rewritten
    # The final model folder and the stage folder, given directly, evaluate the same int8 file's result.
    stage = run / "stages" / "01-int8"
    for folder in (run / "model", stage, stage / "model"):
        code, out, _ = cli("eval", folder, "--json", "--no-record")
        assert json.loads(out)["accuracy"] == pytest.approx(final["accuracy"]), folder
        assert "onnxruntime" in json.loads(out)["runtime"]
    code, out, _ = cli("eval", run, "--runtime", "torch")
    assert code == 0 and "pytorch, which only simulates the deployed model.onnx" in out
    assert set(_metadata(run / "model")["evaluations"]) == {"onnxruntime", "pytorch"}


def test_eval_of_a_model_saved_from_python_lets_chart_plot_it(cli, tmp_path):
    folder = tmp_path / "mine"
    deepslim.save(deepslim.create_model("lenet5"), folder)  # no metrics, no data set
    code, _, err = cli("chart", folder, "--no-pretrained", "--out", tmp_path / "c.png")
    assert code == 2 and "records no test accuracy" in err and f"deepslim eval {folder}" in err
    code, out, _ = cli("eval", folder, "--data", "synthetic", "--json")
    result = json.loads(out)
    metrics = _metadata(folder)["metrics"]
    assert metrics["test_accuracy"] == result["accuracy"] and metrics["test_images"] == 400
    assert metrics["runtime"] == "pytorch"
    code, out, _ = cli("chart", folder, "--no-pretrained", "--out", tmp_path / "c.png", "--json")
    points = json.loads(out)["points"]
    assert code == 0 and points[0]["accuracy"] == result["accuracy"]
    assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"
    # An evaluation describes those weights only: a model saved from the loaded one does not inherit it.
    deepslim.save(deepslim.load(folder), tmp_path / "copy")
    assert "evaluations" not in _metadata(tmp_path / "copy")


def test_eval_no_record_leaves_metadata_alone(cli, outputs):
    before = (outputs / "sparse" / "metadata.json").read_bytes()
    code, out, _ = cli("eval", outputs / "sparse", "--no-record", "--json")
    assert code == 0 and json.loads(out)["recorded_in"] is None
    assert (outputs / "sparse" / "metadata.json").read_bytes() == before


@pytest.mark.parametrize("name, deployed", [("int8", "int8/model.int8.onnx"), ("run", "run/model.onnx")])
def test_profile_of_int8_times_and_sizes_the_int8_file(cli, outputs, monkeypatch, name, deployed):
    from deepslim.cli import profile as profile_cli

    timed = []
    real = profile_cli.measure_latency

    def spy(model_or_path, *args, **kwargs):
        timed.append((model_or_path, kwargs.get("runtimes")))
        return real(model_or_path, *args, **kwargs)

    monkeypatch.setattr(profile_cli, "measure_latency", spy)
    code, out, _ = cli("profile", outputs / name, "--latency", "--batch-sizes", "1", "--threads", "1",
                       "--latency-seconds", "0", "--json")
    data = json.loads(out)
    file = outputs / deployed
    assert code == 0 and timed == [(file, ("onnxruntime",))]
    assert {r["runtime"] for r in data["latency"]} == {"onnxruntime"} and data["timed"]["onnxruntime"] == str(file)
    assert data["size"]["deployed_bytes"] == data["size"]["onnx_bytes"] == file.stat().st_size
    assert data["deployed"] == {"onnx": str(file), "runtime": "onnxruntime int8"}
    assert data["macs"] == json.loads((outputs / "run" / "metrics.json").read_text())["final"]["macs"]
    code, out, _ = cli("profile", outputs / name, "--latency", "--batch-sizes", "1", "--threads", "1",
                       "--latency-seconds", "0")
    assert "what ships; its PyTorch twin is not timed" in out and f"KB as int8 ONNX ({file.name})" in out


@pytest.mark.parametrize("name, encoding", [("binary", "bit-packed"), ("sparse", "sparse bitmask")])
def test_profile_of_packed_and_sparse_models_reports_the_saved_weights_file(cli, outputs, name, encoding):
    code, out, _ = cli("profile", outputs / name, "--latency", "--batch-sizes", "1", "--threads", "1",
                       "--latency-seconds", "0", "--json")
    size = json.loads(out)["size"]
    on_disk = (outputs / name / "weights.safetensors").stat().st_size
    assert code == 0 and size["deployed_bytes"] == size["weights_file_bytes"] == on_disk
    assert encoding in size["weights_encoding"] and size["deployed_as"].startswith("weights.safetensors (")
    assert on_disk < 0.5 * size["dense_bytes"] and on_disk < size["onnx_bytes"]
    code, out, _ = cli("profile", outputs / "base", "--latency", "--batch-sizes", "1", "--threads", "1",
                       "--latency-seconds", "0", "--json")
    dense = json.loads(out)["size"]
    assert dense["weights_encoding"] == "dense" and dense["deployed_as"] == "float32 ONNX export"


def test_export_names_or_copies_the_deployed_file(cli, outputs, tmp_path):
    int8 = outputs / "int8"
    code, out, _ = cli("export", int8, "--onnx")
    assert code == 0 and f"already ships {int8 / 'model.int8.onnx'}" in out and not (int8 / "model.onnx").exists()
    code, out, _ = cli("export", int8, "--onnx", "--output", tmp_path / "deploy.onnx", "--json")
    assert code == 0 and json.loads(out)["copied"]
    assert (tmp_path / "deploy.onnx").read_bytes() == (int8 / "model.int8.onnx").read_bytes()
    code, out, _ = cli("export", outputs / "run", "--onnx", "--json")
    assert code == 0 and json.loads(out)["path"] == str(outputs / "run" / "model.onnx")
    code, _, err = cli("export", int8, "--onnx", "--opset", "13")
    assert code == 2 and "--opset does not apply" in err and len(err.strip().splitlines()) == 1


def test_failed_export_leaves_nothing_behind_and_a_rerun_works(cli, outputs, tmp_path, monkeypatch):
    from deepslim.export import onnx as onnx_module

    folder = tmp_path / "binary"
    shutil.copytree(outputs / "binary", folder)
    before = sorted(p.name for p in folder.iterdir())
    real = onnx_module.run_onnx
    monkeypatch.setattr(onnx_module, "run_onnx", lambda session, x: real(session, x) + 0.5)  # ORT "disagrees"
    code, _, err = cli("export", folder, "--onnx")
    assert code == 2 and "differ from PyTorch's by 0.5" in err and "--tolerance" in err  # fake-quantized: the hint
    assert sorted(p.name for p in folder.iterdir()) == before  # no model.onnx, no temporary file
    code, out, _ = cli("export", folder, "--onnx", "--tolerance", "1")
    assert code == 0 and (folder / "model.onnx").is_file() and "max abs diff 5.00e-01" in out
    monkeypatch.setattr(onnx_module, "run_onnx", real)
    code, _, err = cli("export", folder, "--onnx")
    assert code == 2 and "already exists" in err
    (folder / "model.onnx").unlink()
    assert cli("export", folder, "--onnx")[0] == 0


def test_chart_takes_every_output_folder_with_the_deployed_accuracy(cli, outputs, tmp_path):
    run, stage = outputs / "run", outputs / "run" / "stages" / "01-int8"
    folders = [run, stage, outputs / "int8", outputs / "binary", outputs / "sparse"]
    code, out, _ = cli("chart", *folders, "--no-pretrained", "--out", tmp_path / "c.png", "--json")
    points = {p["name"]: p for p in json.loads(out)["points"]}
    assert code == 0 and len(points) == 5
    final = json.loads((run / "metrics.json").read_text())["final"]
    assert points[str(run)]["accuracy"] == final["accuracy"] and points[str(run)]["macs"] == final["macs"]
    assert points[str(stage)]["accuracy"] == json.loads((stage / "stage.json").read_text())["accuracy"]
    int8_metrics = _metadata(outputs / "int8")["metrics"]
    assert int8_metrics["runtime"] == "onnxruntime int8"
    assert points[str(outputs / "int8")]["accuracy"] == int8_metrics["test_accuracy"]


def test_chart_wants_the_int8_accuracy_not_the_twins(cli, outputs, tmp_path):
    folder = tmp_path / "int8"
    shutil.copytree(outputs / "int8", folder)
    meta = _metadata(folder)
    del meta["metrics"]  # as if saved without the int8 model's result
    (folder / "metadata.json").write_text(json.dumps(meta))
    assert cli("eval", folder, "--runtime", "torch")[0] == 0  # the simulated twin's accuracy does not count
    code, _, err = cli("chart", folder, "--no-pretrained", "--out", tmp_path / "c.png")
    assert code == 2 and "records no test accuracy of its deployed model.int8.onnx" in err
    code, out, _ = cli("eval", folder, "--json")
    deployed = json.loads(out)["accuracy"]
    code, out, _ = cli("chart", folder, "--no-pretrained", "--out", tmp_path / "c.png", "--json")
    point = json.loads(out)["points"][0]
    assert code == 0 and point["accuracy"] == deployed and point["accuracy_from"] == "deepslim eval (onnxruntime)"


def test_folders_that_hold_no_model_get_one_line_errors(cli, tmp_path):
    unfinished = tmp_path / "unfinished"
    (unfinished / "stages" / "00-baseline").mkdir(parents=True)
    (unfinished / "state.json").write_text(json.dumps({"finished": ["a"], "done": False}))
    (unfinished / "metrics.json").write_text(json.dumps({"source": "runs/r8"}))
    (unfinished / "stages" / "00-baseline" / "model.onnx").write_bytes(b"")
    code, _, err = cli("eval", unfinished)
    assert code == 2 and "unfinished compress run (1 stage finished)" in err and "rerun" in err
    code, _, err = cli("profile", unfinished / "stages" / "00-baseline")
    assert code == 2 and "holds no saved model" in err and "use the source model runs/r8" in err
    code, _, err = cli("export", tmp_path, "--onnx")
    assert code == 2 and "metadata.json is missing" in err and len(err.strip().splitlines()) == 1


def _label_boxes(fig):
    from matplotlib.text import Text

    fig.canvas.draw()
    return [Text.get_window_extent(t, fig.canvas.get_renderer()) for t in fig.axes[0].texts]


def _overlapping_pairs(boxes):
    return sum(a.overlaps(b) for i, a in enumerate(boxes) for b in boxes[i + 1:])


def test_chart_labels_do_not_overlap(monkeypatch):
    from deepslim.profiling import chart

    # Five variants of one model close together, and the baseline they came from far away.
    points = [{"name": f"model-{i}", "accuracy": 90.0 + 0.05 * i, "macs": 1e6 * (1 + 0.05 * i), "params": 1e5}
              for i in range(5)] + [{"name": "baseline", "accuracy": 92.0, "macs": 5e7, "params": 1e6}]
    boxes = _label_boxes(chart.accuracy_vs_macs_figure(points))
    assert len(boxes) == 6 and _overlapping_pairs(boxes) == 0
    monkeypatch.setattr(chart, "separate_labels", lambda *args: None)
    assert _overlapping_pairs(_label_boxes(chart.accuracy_vs_macs_figure(points))) >= 4  # what they would do


def test_a_model_derived_from_an_int8_folder_does_not_claim_its_int8_file(cli, outputs, tmp_path):
    # "deploy" names a file in the int8 folder; a pruned copy of that model has no such file.
    out = tmp_path / "pruned"
    _run("--quiet", "prune", outputs / "int8", "--method", "magnitude", "--sparsity", "0.5", "--out", out)
    assert "deploy" not in _metadata(out)
    code, text, err = cli("eval", out, "--json", "--no-record")
    assert code == 0, err
    assert json.loads(text)["runtime"] == "pytorch"


def test_eval_runtime_onnxruntime_runs_a_float_folders_own_onnx_export(cli, outputs, tmp_path):
    folder = tmp_path / "base"
    shutil.copytree(outputs / "base", folder)
    code, _, err = cli("eval", folder, "--runtime", "onnxruntime")
    assert code == 2 and "has no ONNX model" in err and f"deepslim export {folder} --onnx" in err
    _run("--quiet", "export", folder, "--onnx")
    code, text, _ = cli("eval", folder, "--runtime", "onnxruntime", "--json")
    torch_code, torch_text, _ = cli("eval", folder, "--json", "--no-record")
    assert code == 0 and json.loads(text)["file"] == str(folder / "model.onnx")
    assert json.loads(text)["accuracy"] == pytest.approx(json.loads(torch_text)["accuracy"])
    assert json.loads(torch_text)["runtime"] == "pytorch"  # the float export only runs when asked for


def test_model_arg_on_a_trained_model_is_refused(cli, outputs):
    for command in (["profile", outputs / "base"], ["cost", outputs / "base", "--data", "synthetic", "--epochs", "1"],
                    ["compress", outputs / "base", "--recipe", outputs / "int8.yaml", "--out", outputs / "x"]):
        code, _, err = cli(*command, "--model-arg", "widths=8,16")
        assert code == 2 and "--model-arg has no effect" in err, command
    assert not (outputs / "x").exists()


def test_compress_model_card_names_the_source_recipe_and_stages(outputs):
    card = (outputs / "run" / "model" / "MODEL_CARD.md").read_text()
    assert f"compressed (recipe int8) from {outputs / 'base'}" in card
    assert "Stages: 1. int8 (quantize)" in card


def test_compress_refuses_an_out_that_holds_its_input(cli, outputs):
    code, _, err = cli("compress", outputs / "run" / "model", "--recipe", outputs / "int8.yaml",
                       "--out", outputs / "run", "--overwrite")
    assert code == 2 and "is or holds the input model's folder" in err
    assert (outputs / "run" / "model" / "weights.safetensors").is_file()
