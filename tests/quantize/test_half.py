"""Half precision: float16/bfloat16 weights behind a float32 interface, saved in half the bytes, and a
float16 ONNX file that ONNX Runtime runs; in a recipe, a `half` stage ships that file."""

import json

import numpy as np
import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.core.inputs import call_model
from deepslim.pipeline import compress, parse_recipe
from deepslim.quantize.half import HalfPrecision, export_half_onnx, to_half
from deepslim.testing import tiny_data

X = torch.randn(8, 1, 28, 28)


@pytest.mark.parametrize("dtype, tolerance", [("float16", 2e-3), ("bfloat16", 3e-2)])
def test_half_copy_keeps_a_float32_interface_and_saves_in_half_the_bytes(dtype, tolerance, tmp_path, device):
    model = deepslim.create_model("resnet8").eval()
    half = to_half(model, dtype).to(device)
    assert next(model.parameters()).dtype == torch.float32  # the input model is untouched
    assert {p.dtype for p in half.parameters()} == {getattr(torch, dtype)}
    with torch.no_grad():
        out, ref = call_model(half, X).cpu(), model(X)
    assert out.dtype == torch.float32
    assert (out - ref).abs().max() <= tolerance * ref.abs().max()
    deepslim.save(model, tmp_path / "fp32")
    deepslim.save(half, tmp_path / "half")
    fp32_bytes = (tmp_path / "fp32" / "weights.safetensors").stat().st_size
    assert (tmp_path / "half" / "weights.safetensors").stat().st_size < 0.52 * fp32_bytes
    loaded = deepslim.load(tmp_path / "half")  # comes back in half precision, not float32
    assert {p.dtype for p in loaded.parameters()} == {getattr(torch, dtype)}
    with torch.no_grad():
        assert torch.equal(loaded(X), half.cpu()(X))


def test_float16_onnx_takes_float32_and_agrees(tmp_path):
    model = deepslim.create_model("resnet8").eval()
    export_half_onnx(model, tmp_path / "m.onnx", X[:1])
    deepslim.export_onnx(model, tmp_path / "fp32.onnx", X[:1])
    assert (tmp_path / "m.onnx").stat().st_size < 0.55 * (tmp_path / "fp32.onnx").stat().st_size
    got = deepslim.onnx_session(tmp_path / "m.onnx").run(None, {"input": X.numpy()})[0]
    with torch.no_grad():
        ref = model(X).numpy()
    assert got.dtype == np.float32 and np.abs(got - ref).max() <= 2e-3 * np.abs(ref).max()


def test_bad_dtype_is_one_clear_error():
    with pytest.raises(DeepslimError, match="HalfPrecision.dtype"):
        HalfPrecision(dtype="float8")
    with pytest.raises(DeepslimError, match="bfloat16 has no ONNX converter"):
        parse_recipe("name: h\nstages:\n  - technique: half\n    dtype: bfloat16\n")


def test_a_half_stage_ships_a_float16_onnx_file(tmp_path):
    torch.manual_seed(0)
    data = tiny_data(n_train=64)
    model = deepslim.create_model("lenet5").eval()
    recipe = parse_recipe("name: h\nstages:\n  - technique: half\n")
    compress(model, data, recipe, tmp_path / "out", device=torch.device("cpu"), latency_seconds=0.02)
    out = tmp_path / "out"
    saved = json.loads((out / "metrics.json").read_text())
    stage = saved["stages"][0]
    assert stage["precision"] == "float16" and not stage["int8"] and stage["runtime"] == "onnxruntime float16"
    assert abs(stage["accuracy"] - saved["baseline"]["accuracy"]) <= 2.0  # a few of the test images may flip
    assert stage["size_bytes"] < 0.55 * saved["baseline"]["size_bytes"]
    assert stage["macs"] == saved["baseline"]["macs"]
    meta = json.loads((out / "model" / "metadata.json").read_text())
    assert meta["deploy"] == {"onnx": "model.fp16.onnx", "runtime": "onnxruntime", "precision": "float16"}
    assert (out / "model.onnx").read_bytes() == (out / "stages" / "01-half" / "model.fp16.onnx").read_bytes()
    assert {p.dtype for p in deepslim.load(out / "model").parameters()} == {torch.float16}


def test_recipe_rules_for_a_half_stage():
    with pytest.raises(DeepslimError, match="'half' produces the deployed ONNX model and must be the last stage"):
        parse_recipe("name: h\nstages:\n  - technique: half\n  - technique: channel_pruning\n")
    with pytest.raises(DeepslimError, match="keep: if_faster would judge the half stage"):
        parse_recipe("name: h\nstages:\n  - technique: half\n    keep: if_faster\n")


def test_a_half_run_is_measured_and_described_as_float16_by_every_command(tmp_path, cli):
    """Sparse weights then half: what ships is the float16 ONNX file, so the headline's size is that file's, and
    eval, profile and export all name float16 (never int8)."""
    torch.manual_seed(0)
    data = tiny_data(n_train=64)
    recipe = parse_recipe("name: h\nstages:\n  - technique: magnitude_pruning\n    sparsity: 0.6\n"
                          "  - technique: half\n")
    deepslim.save(deepslim.create_model("lenet5").eval(), tmp_path / "in", metadata={"dataset": {"name": "synthetic"}})
    metrics = compress(deepslim.load(tmp_path / "in"), data, recipe, tmp_path / "out", device=torch.device("cpu"),
                       latency_seconds=0.02)
    assert metrics["headline"]["size"]["basis"] == "onnx"  # not the compact weights file: the ONNX file ships
    out = tmp_path / "out"
    code, text, err = cli("eval", out, "--data", "synthetic")
    assert code == 0 and "the deployed float16 model" in text, err
    code, text, err = cli("profile", out, "--latency", "--latency-seconds", "0.02", "--batch-sizes", "1")
    assert code == 0 and "float16 ON ONNX Runtime".lower() in text.lower() and "as float16 ONNX" in text, err
    code, _, err = cli("profile", out, "--latency", "--runtimes", "torch")
    assert code == 2 and "ships model.onnx, which only ONNX Runtime runs" in err  # OUT/model.onnx: the fp16 file
    assert len(err.strip().splitlines()) == 1
    code, text, err = cli("export", out, "--onnx", "--json")
    assert code == 0 and json.loads(text)["precision"] == "float16" and not json.loads(text)["int8"], err
