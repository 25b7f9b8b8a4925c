"""The pretrained minilm-l6 embedder: what sentence-transformers computes, through every verb.

`make test` installs the `text` extra, so nothing here skips: the model (90 MB) loads once per module.
"""

import builtins
import json
import os

import numpy as np
import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.export.pretrained import pretrained_path
from deepslim.text import SentenceEmbedder, minilm, tokenize

SENTENCES = ["How do I compress a PDF file on the command line?",
             "Library for reading and writing PNG images",
             "a cat",
             "Utilities to manage Debian package archives, including signing and verifying them."]


@pytest.fixture(scope="module")
def model():
    return deepslim.load_pretrained("minilm-l6")


@pytest.fixture(scope="module")
def inputs(model):
    return tokenize(model, SENTENCES)


@pytest.fixture(scope="module")
def embeddings(model, inputs):
    with torch.no_grad():
        return model(**inputs)


def test_listed_and_shaped_as_all_minilm_l6_v2(model, embeddings):
    assert "minilm-l6" in deepslim.list_pretrained()
    assert isinstance(model, torch.nn.Module) and not model.training
    assert os.environ["HF_HUB_OFFLINE"] == "1"  # set by the loader: nothing may be downloaded
    config = model.bert.config
    assert (config.num_hidden_layers, config.hidden_size, config.num_attention_heads) == (6, 384, 12)
    assert sum(p.numel() for p in model.parameters()) == minilm.INFO["params"]  # 22.7M less the unused pooler
    assert embeddings.shape == (len(SENTENCES), 384)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(len(SENTENCES)), atol=1e-5)


def test_matches_sentence_transformers(model, embeddings):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(pretrained_path("minilm-l6")), device="cpu")
    theirs = torch.from_numpy(reference.encode(SENTENCES, convert_to_numpy=True))
    cosine = torch.nn.functional.cosine_similarity(embeddings, theirs, dim=1)
    assert cosine.min() > 0.9999, cosine
    # encode batches differently (padding per batch) and still agrees
    assert torch.nn.functional.cosine_similarity(model.encode(SENTENCES, batch_size=3), theirs).min() > 0.9999


def test_tokenize_gives_the_dict_inputs(model, inputs):
    assert sorted(inputs) == ["attention_mask", "input_ids"]
    assert inputs["input_ids"].shape == inputs["attention_mask"].shape and inputs["input_ids"].shape[0] == 4
    assert tokenize(model, ["word " * 1000])["input_ids"].shape == (1, 256)  # cut as sentence-transformers does


def test_save_and_load_give_identical_outputs(model, inputs, embeddings, tmp_path):
    # No allow_modules: the BERT inside is what SentenceEmbedder's own constructor builds, not a class
    # the file asks to import, so the command-line verbs load a saved embedder as any deepslim model.
    deepslim.save(model, tmp_path / "m")
    loaded = deepslim.load(tmp_path / "m")
    assert isinstance(loaded, SentenceEmbedder)
    with torch.no_grad():
        assert torch.equal(loaded(**inputs), embeddings)
    assert loaded.tokenizer is model.tokenizer  # found again by name, not by a path of this machine


def test_a_file_naming_another_transformers_class_still_needs_allow_modules(model, tmp_path):
    deepslim.save(model, tmp_path / "m")
    spec_file = tmp_path / "m" / "architecture.json"
    spec = json.loads(spec_file.read_text())
    spec["children"]["bert"]["class"] = "transformers.models.bert.modeling_bert.BertForMaskedLM"
    spec_file.write_text(json.dumps(spec))
    with pytest.raises(DeepslimError, match="outside torch.nn and deepslim and not in allow_modules"):
        deepslim.load(tmp_path / "m")


def test_profile_takes_its_dict_inputs(model, inputs):
    p = deepslim.profile(model, inputs)
    assert p.params == minilm.INFO["params"]
    assert p.macs > 0


def test_onnx_with_dynamic_sequence_matches_on_onnxruntime(model, inputs, embeddings, tmp_path):
    one = {k: v[:1] for k, v in inputs.items()}
    result = deepslim.export_onnx(model, tmp_path / "m.onnx", one, dynamic_sequence=True)
    session = deepslim.onnx_session(result["path"], threads=1)
    # the whole padded batch, at another batch size and length than the export's example
    out = deepslim.export.run_onnx(session, inputs)
    assert np.abs(out - embeddings.numpy()).max() < 1e-4


def test_missing_text_extra_is_one_clear_error(monkeypatch):
    monkeypatch.setattr(minilm, "package_model_dir", lambda: None)
    with pytest.raises(DeepslimError) as err:
        deepslim.load_pretrained("minilm-l6")
    assert "pip install -e '.[text]'" in err.value.hint and "\n" not in str(err.value)


def test_missing_transformers_is_one_clear_error(monkeypatch):
    real_import = builtins.__import__

    def no_transformers(name, *args, **kwargs):
        if name == "transformers":
            raise ImportError("No module named 'transformers'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_transformers)
    with pytest.raises(DeepslimError) as err:
        SentenceEmbedder(hidden_size=8)
    assert "pip install -e '.[text]'" in err.value.hint


def test_zoo_lists_it_without_loading(capsys):
    from deepslim.cli import main

    assert main(["zoo"]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if "minilm-l6" in line)
    assert "6 layers, hidden 384, 12 heads" in line and "22,565,376" in line


def test_bad_encode_arguments_are_refused(model):
    with pytest.raises(DeepslimError, match="list of strings"):
        model.encode("one string")
    with pytest.raises(DeepslimError, match="batch_size"):
        model.encode(["a"], batch_size=0)
