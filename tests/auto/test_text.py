"""`deepslim auto` on a sentence embedder: the text plan space (layers, FFN neurons, heads, dynamic int8)
on the debian-descriptions test fixture, scored by recall@1."""

import json

import torch

import deepslim
from deepslim.auto import auto_compress
from deepslim.text import SentenceEmbedder

FIXTURE = "tests/data/fixtures/debian_small"


def test_auto_on_a_tiny_sentence_embedder(config_factory, tmp_path):
    torch.manual_seed(0)
    model = SentenceEmbedder(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64).eval()
    data = deepslim.load_dataset("debian-descriptions", data_dir=FIXTURE)
    result = auto_compress(model, data, config_factory(target="speedup>=1.0", trials=3), tmp_path / "out",
                           device=torch.device("cpu"),
                           data_spec={"name": "debian-descriptions", "options": {"data_dir": FIXTURE}})
    assert result["task"] == "retrieval"
    plans = [r["plan"] for r in result["trials"]]
    assert all(set(p) == {"keep_layers", "ffn_ratio", "head_ratio", "quantize", "epochs"} for p in plans)
    assert all(1 <= p["keep_layers"] <= 2 for p in plans)
    measured = result["finalists"][0]["measured"]
    assert set(measured["speedups"]) == {"1", "32"}  # the text task's batch sizes, timed together
    metrics = json.loads((tmp_path / "out" / "finalists" / f"trial-{result['finalists'][0]['trial']:04d}"
                          / "metrics.json").read_text())
    assert metrics["task"]["metric"] == "recall@1"
    assert result["published"] and (tmp_path / "out" / "model.onnx").is_file()
