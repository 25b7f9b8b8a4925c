"""`deepslim eval` and `export` on a saved sentence embedder and the debian-descriptions fixture."""

import json

import pytest
import torch

import deepslim
from deepslim.text import SentenceEmbedder

FIXTURE = "tests/data/fixtures/debian_small"
DATA = ["--data", "debian-descriptions", "--data-dir", FIXTURE]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("text") / "embedder"
    deepslim.save(SentenceEmbedder(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64), folder)
    return folder


def test_eval_reports_retrieval_and_records_it(saved, cli):
    from deepslim.text.evaluate import evaluate_retrieval

    code, stdout, _ = cli("eval", saved, *DATA, "--json")
    result = json.loads(stdout)
    assert code == 0 and result["task"] == "retrieval" and result["runtime"] == "pytorch"
    data = deepslim.load_dataset("debian-descriptions", data_dir=FIXTURE)
    expected = evaluate_retrieval(deepslim.load(saved), data.test)
    assert result["recall@1"] == expected["recall@1"] and result["test_pairs"] == len(data.test)
    recorded = json.loads((saved / "metadata.json").read_text())["evaluations"]["pytorch"]
    assert recorded["recall@1"] == result["recall@1"] and recorded["test_pairs"] == len(data.test)
    code, stdout, _ = cli("eval", saved, *DATA)
    assert code == 0 and stdout.startswith("recall@1: ") and "test pairs" in stdout


def test_export_takes_token_ids_of_any_length_and_onnx_runtime_ranks_alike(saved, cli):
    code, stdout, _ = cli("export", saved, "--onnx", "--json")
    assert code == 0 and json.loads(stdout)["max_abs_diff"] < 1e-4
    code, stdout, _ = cli("eval", saved, *DATA, "--runtime", "onnxruntime", "--json", "--no-record")
    on_ort = json.loads(stdout)
    code, stdout, _ = cli("eval", saved, *DATA, "--runtime", "torch", "--json", "--no-record")
    on_torch = json.loads(stdout)
    assert on_ort["runtime"] == "model.onnx on onnxruntime"
    assert on_ort["mrr"] == pytest.approx(on_torch["mrr"], abs=1e-3)
    code, _, err = cli("export", saved, "--onnx", "--overwrite", "--input-shape", "1,8")
    assert code == 2 and "does not apply to a sentence embedder" in err
