"""compress on a text retrieval task: a sentence embedder on debian-descriptions (the test fixture).

Recall@1 is the score, latency is timed on one real query (batch 1) and 32 real descriptions padded
(batch 32), fine-tunes distil from the input model on unlabelled training text, and techniques that
cannot serve text are refused before any work."""

import json

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.pipeline import compress, parse_recipe
from deepslim.text import SentenceEmbedder

FIXTURE = "tests/data/fixtures/debian_small"
TINY = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)
RECIPE = """name: text
stages:
  - technique: layer_dropping
    keep_layers: 1
    finetune: {epochs: 1, lr: 0.002, batch_size: 16, distill: true}
  - technique: ffn_pruning
    ratio: 0.5
  - technique: quantize_dynamic
targets: {min_speedup_b32: 1.0}
"""


@pytest.fixture(scope="module")
def data():
    return deepslim.load_dataset("debian-descriptions", data_dir=FIXTURE)


def _model():
    torch.manual_seed(0)
    return SentenceEmbedder(**TINY).eval()


def test_a_text_recipe_end_to_end(data, tmp_path):
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    metrics = compress(model, data, parse_recipe(RECIPE), tmp_path / "out", device=torch.device("cpu"),
                       latency_seconds=0.02)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the input is untouched
    assert metrics["task"] == {"kind": "retrieval", "metric": "recall@1", "batch_sizes": ["1", "32"]}
    assert metrics["data"]["unit"] == "text pair" and metrics["data"]["train_texts"] == 2 * len(data.train)
    tokens = metrics["data"]["latency_tokens"]
    assert tokens["32"] >= tokens["1"] and tokens["32"] <= 128  # a long description against a short query
    for entry in [metrics["baseline"], *metrics["stages"]]:
        assert entry["accuracy"] == entry["retrieval"]["recall@1"] and entry["retrieval"]["n"] == len(data.test)
        assert set(entry["latency_ms"]["onnxruntime"]) == {"1", "32"}
    dropped, ffn, int8 = metrics["stages"]
    assert dropped["macs"] < 0.6 * metrics["baseline"]["macs"] and ffn["macs"] < dropped["macs"]
    assert dropped["data"]["finetune_epochs"] == 1 and "torch" in dropped["latency_ms"]
    assert int8["int8"] and int8["details"]["int8_dynamic"]["embeddings"] == "8-bit"
    assert int8["size_bytes"] < 0.4 * ffn["size_bytes"]
    assert set(metrics["final"]["speedup_vs_baseline"]["onnxruntime"]) == {"1", "32"}
    assert "min_speedup_b32" in metrics["targets"] and "batch 32" in metrics["headline"]["text"]
    assert "points recall@1" in metrics["headline"]["text"]
    meta = json.loads((tmp_path / "out" / "model" / "metadata.json").read_text())
    assert meta["deploy"]["onnx"] == "model.int8.onnx" and meta["metrics"]["runtime"] == "onnxruntime int8"
    report = (tmp_path / "out" / "report.html").read_text()
    assert "recall@1 %" in report and "recall@10" in report and "MRR" in report
    card = (tmp_path / "out" / "model" / "MODEL_CARD.md").read_text()  # the model card words it as retrieval
    assert "recall@1" in card and "training text pairs" in card and "test images" not in card


def test_low_rank_linear_and_static_int8_on_text(data, tmp_path):
    recipe = parse_recipe("name: t\nstages:\n  - technique: factorize\n    method: svd\n    mac_ratio: 0.7\n"
                          "  - technique: quantize\n    calibration_size: 64\n")
    metrics = compress(_model(), data, recipe, tmp_path / "out", device=torch.device("cpu"), latency_seconds=0.02)
    low_rank, int8 = metrics["stages"]
    assert low_rank["macs"] <= 0.7 * metrics["baseline"]["macs"] + 1 and low_rank["retrieval"]["n"] == len(data.test)
    assert int8["int8"] and int8["details"]["calibration_images"] == 64 and int8["details"]["int8"]["quantized_nodes"]
    assert set(int8["latency_ms"]["onnxruntime"]) == {"1", "32"}


def test_techniques_and_targets_a_text_run_cannot_use_are_refused_before_any_work(data, tmp_path):
    model = _model()
    for text, words in [("name: t\nstages:\n  - technique: half\n", "does not apply to retrieval"),
                        ("name: t\nstages:\n  - technique: channel_pruning\n", "for retrieval use: "),
                        ("name: t\nstages:\n  - technique: head_pruning\ntargets: {min_speedup_b64: 2}\n",
                         "min_speedup_b64 does not apply")]:
        with pytest.raises(DeepslimError, match=words):
            compress(model, data, parse_recipe(text), tmp_path / "out", device=torch.device("cpu"))
        assert not (tmp_path / "out").exists()


def test_an_image_model_on_text_data_is_one_clear_error(data, tmp_path):
    with pytest.raises(DeepslimError, match="text retrieval data set, and compress runs it with a sentence embedder, not a Sequential"):
        compress(deepslim.create_model("lenet5"), data, parse_recipe("name: t\nstages:\n  - technique: head_pruning\n"),
                 tmp_path / "out", device=torch.device("cpu"))


def test_image_settings_in_a_text_recipe_are_refused_before_any_work(data, tmp_path):
    for text, words in [("  - technique: layer_dropping\n    finetune: {epochs: 1}\n", "has no labels, it distils"),
                        ("  - technique: factorize\n    mac_ratio: 0.5\n    selection: sensitivity\n",
                         "scores ranks by image accuracy"),
                        ("  - technique: quantize\n    rounding: adaround\n", "adaround is for image models")]:
        with pytest.raises(DeepslimError, match=words):
            compress(_model(), data, parse_recipe("name: t\nstages:\n" + text), tmp_path / "out",
                     device=torch.device("cpu"))
        assert not (tmp_path / "out").exists()
    images = deepslim.load_dataset("synthetic", subset=64)
    with pytest.raises(DeepslimError, match="synthetic is an image data set, and a sentence embedder takes text"):
        compress(_model(), images, parse_recipe("name: t\nstages:\n  - technique: head_pruning\n"), tmp_path / "out",
                 device=torch.device("cpu"))
    assert not (tmp_path / "out").exists()
