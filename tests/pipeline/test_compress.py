import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.pipeline import compress, parse_recipe
from deepslim.pipeline import techniques as techniques_module
from deepslim.pipeline.headline import summary_line
from deepslim.testing import tiny_data

RECIPE = """name: tiny
stages:
  - technique: channel_pruning
    ratio: 0.3
    finetune: {epochs: 1, lr: 0.02, batch_size: 32, distill: true}
  - technique: quantize
"""
KEYS = {"accuracy", "macs", "params", "size_bytes", "latency_ms"}


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    data = tiny_data(n_train=200)
    model = deepslim.create_model("resnet8")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=1, batch_size=32, lr=0.05))
    return model.eval(), data


def test_tiny_recipe_end_to_end(trained, tmp_path):
    model, data = trained
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = compress(model, data, parse_recipe(RECIPE), tmp_path / "out", device=torch.device("cpu"),
                       latency_seconds=0.05)
    out = tmp_path / "out"
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # input untouched
    saved = json.loads((out / "metrics.json").read_text())
    assert set(saved) >= {"baseline", "stages", "final"} and len(saved["stages"]) == 2
    for entry in [saved["baseline"], saved["final"], *saved["stages"]]:
        assert KEYS <= set(entry)
        assert set(entry["latency_ms"]["onnxruntime"]) == {"1", "64"}
    assert "torch" in saved["stages"][0]["latency_ms"] and saved["stages"][1]["int8"]
    assert set(saved["final"]["speedup_vs_baseline"]["onnxruntime"]) == {"1", "64"}
    assert saved["stages"][0]["macs"] < saved["baseline"]["macs"]
    assert saved["final"]["size_bytes"] < saved["stages"][0]["size_bytes"]  # int8 is smaller
    assert (out / "stages" / "01-channel_pruning" / "model" / "metadata.json").is_file()
    assert (out / "stages" / "02-quantize" / "model.int8.onnx").is_file()
    # An int8 stage's model folder carries the deployed int8 ONNX and that model's own accuracy.
    int8_meta = json.loads((out / "stages" / "02-quantize" / "model" / "metadata.json").read_text())
    assert int8_meta["deploy"] == {"onnx": "model.int8.onnx", "runtime": "onnxruntime", "precision": "int8"}
    assert int8_meta["metrics"]["runtime"] == "onnxruntime int8"
    assert int8_meta["metrics"]["test_accuracy"] == saved["stages"][1]["accuracy"]
    assert (out / "stages" / "02-quantize" / "model" / "model.int8.onnx").read_bytes() == \
        (out / "model.onnx").read_bytes() == (out / "model" / "model.int8.onnx").read_bytes()
    published = json.loads((out / "model" / "metadata.json").read_text())
    assert published["compression"]["recipe"] == "tiny" and published["deploy"]["onnx"] == "model.int8.onnx"
    # One comparison: every stage against the baseline; the headline is the final stage's row.
    assert set(saved["comparison"]["stages"]) == {"1", "2"}
    assert saved["final"]["speedup_vs_baseline"]["onnxruntime"] == saved["comparison"]["stages"]["2"]["vs_baseline"]
    assert saved["headline"]["text"] == summary_line(saved)
    reloaded = deepslim.load(out / "model")
    assert reloaded(data.test.images[:2]).shape == (2, 10)
    accuracy = deepslim.export.evaluate_onnx(out / "model.onnx", data.test)["accuracy"]
    assert accuracy == pytest.approx(metrics["final"]["accuracy"])
    page = (out / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3 and "http" not in page.replace("http-equiv", "")
    with pytest.raises(DeepslimError, match="already holds a finished compression run"):
        compress(model, data, parse_recipe(RECIPE), out, device=torch.device("cpu"))


def test_failed_stage_keeps_earlier_stages_and_resume_skips_them(trained, tmp_path, monkeypatch, fake_compare):
    model, data = trained
    fast = {"compare": fake_compare({})}  # resuming is the subject here, not timing
    out = tmp_path / "out"
    original = techniques_module.TECHNIQUES["quantize"].apply

    def interrupted(ctx, config):
        raise KeyboardInterrupt

    monkeypatch.setattr(techniques_module.TECHNIQUES["quantize"], "apply", interrupted)
    with pytest.raises(DeepslimError, match=r"interrupted during stage 2 \(quantize\)"):
        compress(model, data, parse_recipe(RECIPE), out, device=torch.device("cpu"), latency_seconds=0.05, **fast)
    first = json.loads((out / "metrics.json").read_text())["stages"][0]
    assert json.loads((out / "state.json").read_text())["finished"] == ["channel_pruning"]

    def broken(ctx, config):
        raise DeepslimError("calibration went wrong")

    monkeypatch.setattr(techniques_module.TECHNIQUES["quantize"], "apply", broken)
    with pytest.raises(DeepslimError, match=r"stage 2 \(quantize\) failed: calibration went wrong"):
        compress(model, data, parse_recipe(RECIPE), out, device=torch.device("cpu"), latency_seconds=0.05, **fast)
    monkeypatch.setattr(techniques_module.TECHNIQUES["quantize"], "apply", original)
    metrics = compress(model, data, parse_recipe(RECIPE), out, device=torch.device("cpu"), latency_seconds=0.05,
                       **fast)
    assert metrics["stages"][0] == first  # stage 1 was not run again
    with pytest.raises(DeepslimError, match="different recipe"):
        other = tmp_path / "other"
        compress(model, data, parse_recipe(RECIPE), other, device=torch.device("cpu"), latency_seconds=0.05, **fast)
        state = json.loads((other / "state.json").read_text())
        state["done"] = False
        (other / "state.json").write_text(json.dumps(state))
        compress(model, data, parse_recipe(RECIPE.replace("0.3", "0.4")), other, device=torch.device("cpu"))


def test_resume_after_kill(synthetic_run, tmp_path):
    """A real SIGKILL during stage 2; rerunning the same command resumes after stage 1."""
    source = synthetic_run("resnet8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - technique: channel_pruning\n    ratio: 0.3\n"
                      "  - technique: magnitude_pruning\n    sparsity: 0.5\n    finetune: {epochs: 30, batch_size: 32}\n")
    out = tmp_path / "out"
    command = [sys.executable, "-m", "deepslim", "--quiet", "compress", str(source), "--recipe", str(recipe),
               "--out", str(out), "--subset", "256", "--latency-seconds", "0.05"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    state = out / "state.json"
    deadline = time.time() + 180
    while time.time() < deadline and proc.poll() is None:
        if state.is_file() and json.loads(state.read_text())["finished"] == ["channel_pruning"]:
            break
        time.sleep(0.1)
    time.sleep(1.0)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    recorded = json.loads(state.read_text())
    assert recorded["finished"] == ["channel_pruning"] and recorded["done"] is False
    assert recorded["data"]["subset"] == 256  # a resume must train on the same images
    first = json.loads((out / "metrics.json").read_text())["stages"][0]
    result = subprocess.run([c for c in command if c != "--quiet"], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    assert "resuming after stage 1 (channel_pruning)" in result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["stages"][0] == first and len(metrics["stages"]) == 2 and "final" in metrics
    assert not list((out / "stages").glob("*.partial"))


def test_factorize_sensitivity_and_qat_stages(trained, tmp_path, fake_compare):
    model, data = trained
    recipe = parse_recipe("""stages:
  - technique: factorize
    mac_ratio: 0.7
    finetune: {epochs: 1, batch_size: 32}
  - technique: sensitivity_pruning
    mac_ratio: 0.8
    ratios: [0.5]
    scan_finetune_images: 32
  - technique: qat
    finetune: {epochs: 1, batch_size: 32, lr: 0.005, distill: true}
""")
    metrics = compress(model, data, recipe, tmp_path / "out", device=torch.device("cpu"), latency_seconds=0.05,
                       compare=fake_compare({}))
    factorized, pruned, qat = metrics["stages"]
    assert factorized["macs"] <= 0.7 * metrics["baseline"]["macs"]
    assert pruned["macs"] <= 0.8 * factorized["macs"] * 1.001
    assert qat["int8"] and (tmp_path / "out" / "stages" / "03-qat" / "model.int8.onnx").is_file()
    assert deepslim.load(tmp_path / "out" / "model")(data.test.images[:2]).shape == (2, 10)


def test_adaptive_pruning_stage(trained, tmp_path, fake_compare):
    model, data = trained
    recipe = parse_recipe("""stages:
  - technique: adaptive_pruning
    mac_ratio: 0.6
    step: 0.2
    step_finetune_images: 64
""")
    metrics = compress(model, data, recipe, tmp_path / "out", device=torch.device("cpu"), latency_seconds=0.05,
                       compare=fake_compare({}))
    (stage,) = metrics["stages"]
    assert stage["macs"] <= 0.6 * metrics["baseline"]["macs"]
    assert stage["details"]["history"][-1]["macs"] == stage["macs"]
    assert deepslim.load(tmp_path / "out" / "model")(data.test.images[:2]).shape == (2, 10)


def test_block_dropping_then_channel_pruning_then_int8(trained, tmp_path, fake_compare):
    model, data = trained
    recipe = parse_recipe("""stages:
  - technique: block_dropping
    blocks: 1
  - technique: channel_pruning
    ratio: 0.3
    round_to: 8
    finetune: {epochs: 1, batch_size: 32, distill: true}
  - technique: quantize
""")
    metrics = compress(model, data, recipe, tmp_path / "out", device=torch.device("cpu"), latency_seconds=0.05,
                       compare=fake_compare({}))
    dropped, pruned, _ = metrics["stages"]
    assert list(dropped["details"]["plan"]["layers"]) == ["stages.0.0"]  # resnet8's only identity-shortcut block
    assert dropped["macs"] < metrics["baseline"]["macs"] and pruned["macs"] < dropped["macs"]
    back = deepslim.load(tmp_path / "out" / "model")
    assert isinstance(back.stages[0][0], torch.nn.Identity) and back(data.test.images[:2]).shape == (2, 10)


def test_a_resume_on_other_data_is_refused(tmp_path):
    # An unfinished run fine-tuned on one --subset; resuming it on other images would mix two data sets
    # in one run while metrics.json records the first.
    from deepslim.pipeline.runner import prepare_output

    recipe = parse_recipe(RECIPE)
    out = tmp_path / "out"
    prepare_output(out, recipe, False, tiny_data(n_train=200))
    assert prepare_output(out, recipe, False, tiny_data(n_train=200))["finished"] == []  # same data resumes
    with pytest.raises(DeepslimError, match="unfinished run on other data") as err:
        prepare_output(out, recipe, False, tiny_data(n_train=120))
    assert "--subset 200" in err.value.hint


def test_quantize_stage_with_adaround_rounds_once_and_records_it(trained, tmp_path, fake_compare):
    model, data = trained
    recipe = parse_recipe("name: ada\nstages:\n  - technique: quantize\n    rounding: adaround\n"
                          "    adaround_iterations: 10\n    calibration_size: 64\n")
    compress(model, data, recipe, tmp_path / "out", device=torch.device("cpu"), compare=fake_compare({}))
    details = json.loads((tmp_path / "out" / "metrics.json").read_text())["stages"][0]["details"]
    assert len(details["adaround"]["layers"]) == 10 and details["adaround"]["left_at_nearest"] == {}
    assert len(details["int8"]["quantized_nodes"]) == 10


def test_qat_refuses_adaround():
    with pytest.raises(DeepslimError, match="post-training method"):
        parse_recipe("name: q\nstages:\n  - technique: qat\n    rounding: adaround\n")
