"""Retrieval evaluation of an embedder in PyTorch and on ONNX Runtime; tokenize's refusals and notes."""


import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.text import SentenceEmbedder, tokenize
from deepslim.text import embedder as embedder_module
from deepslim.text.evaluate import encode_texts, evaluate_retrieval


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return SentenceEmbedder(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64, max_length=16).eval()


@pytest.fixture(scope="module")
def pairs():
    return deepslim.load_dataset("debian-descriptions", data_dir="tests/data/fixtures/debian_small").train


def test_length_sorted_batches_give_the_embeddings_of_one_text_at_a_time(model, pairs):
    texts = list(pairs.documents[:12])
    together = encode_texts(model, texts, batch_size=5)
    with torch.no_grad():
        alone = torch.cat([model(**tokenize(model, [t])) for t in texts])
    assert torch.allclose(together, alone, atol=1e-5)


def test_onnx_runtime_and_pytorch_agree(model, pairs, tmp_path):
    path = tmp_path / "m.onnx"
    deepslim.export_onnx(model, path, tokenize(model, ["a short example"]), dynamic_sequence=True)
    on_torch = evaluate_retrieval(model, pairs)
    on_ort = evaluate_retrieval(model, pairs, onnx=path)
    assert on_torch["n"] == on_ort["n"] == len(pairs)
    assert on_ort["mrr"] == pytest.approx(on_torch["mrr"], abs=1e-3)


def test_empty_text_is_refused_and_long_text_cut_with_one_note(model, monkeypatch, caplog):
    with pytest.raises(DeepslimError, match="text 1 is empty"):
        tokenize(model, ["fine", "   "])
    with pytest.raises(DeepslimError, match="sentence embedder"):
        encode_texts(torch.nn.Linear(2, 2), ["a"])
    monkeypatch.setattr(embedder_module, "_said_truncated", False)
    notes = []
    monkeypatch.setattr(embedder_module, "log", notes.append)
    long_text = "word " * 40
    assert tokenize(model, [long_text, "short"])["input_ids"].shape == (2, 16)
    tokenize(model, [long_text])
    assert len(notes) == 1 and "cut to their first 16" in notes[0]
    monkeypatch.setattr(embedder_module, "_said_truncated", False)
    tokenize(model, ["exactly short"])
    assert len(notes) == 1  # a text within the limit says nothing


def test_encoding_keeps_the_models_training_mode(model, pairs):
    model.train()
    try:
        encode_texts(model, list(pairs.queries[:3]))
        assert model.training
    finally:
        model.eval()


def test_the_note_names_where_the_limit_came_from(model, monkeypatch):
    notes = []
    monkeypatch.setattr(embedder_module, "log", notes.append)
    monkeypatch.setattr(embedder_module, "_said_truncated", False)
    encode_texts(model, ["word " * 40])  # the model's own limit (16 here)
    assert len(notes) == 1 and "the model's maximum length" in notes[0]
    monkeypatch.setattr(embedder_module, "_said_truncated", False)
    encode_texts(model, ["word " * 40], max_length=8)
    assert len(notes) == 2 and "max_length=8" in notes[1]


def test_a_corrupt_saved_embedder_is_one_clear_error(model, tmp_path, cli):
    import json

    deepslim.save(model, tmp_path / "m")
    spec_file = tmp_path / "m" / "architecture.json"
    spec = json.loads(spec_file.read_text())
    spec["args"]["hidden_act"] = "no-such-activation"  # transformers raises KeyError deep inside
    spec_file.write_text(json.dumps(spec))
    with pytest.raises(DeepslimError, match="cannot rebuild .*SentenceEmbedder"):
        deepslim.load(tmp_path / "m")
    (tmp_path / "m" / "weights.safetensors").write_bytes(b"not safetensors")
    code, _, err = cli("eval", tmp_path / "m", "--data", "debian-descriptions", "--data-dir",
                       "tests/data/fixtures/debian_small")
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err


def test_a_tokenizer_that_does_not_match_the_model_is_one_clear_error():
    small_vocab = SentenceEmbedder(vocab_size=1000, hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64)
    with pytest.raises(DeepslimError, match="has 30,522 tokens but this embedder's vocabulary has 1,000"):
        encode_texts(small_vocab, ["a text"])
    short = SentenceEmbedder(hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64,
                             max_position_embeddings=64, max_length=128)
    with pytest.raises(DeepslimError, match="max_length 128 exceeds the model's 64 positions"):
        encode_texts(short, ["a text"])
