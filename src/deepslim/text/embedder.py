"""A sentence embedder as one ``nn.Module``: a Hugging Face BERT, mean pooling over the attention
mask, then L2 normalisation (what sentence-transformers' all-MiniLM-L6-v2 does in three modules).

``forward(input_ids, attention_mask)`` returns ``(batch, hidden)`` unit vectors, so every deepslim
verb can call it with the dict inputs that ``tokenize`` makes. ``deepslim.save``/``load`` rebuild it
from its constructor's JSON arguments; the BERT inside is what that constructor builds, so no
``allow_modules`` is needed (``export.architecture``), and pruned widths and layers come back.

Example:
    >>> import deepslim
    >>> from deepslim.text import tokenize
    >>> model = deepslim.load_pretrained("minilm-l6")                 # doctest: +SKIP
    >>> model(**tokenize(model, ["a cat", "a dog"])).shape            # doctest: +SKIP
    torch.Size([2, 384])
"""

from __future__ import annotations

import functools
import os

import torch
from torch import nn

from ..core import DeepslimError, SerializableModule, log

TEXT_EXTRA_HINT = "install the text extra: pip install -e '.[text]'"


def require_text_extra(what: str):
    """Import ``transformers`` offline, or one clear error naming the extra that provides it."""
    # Weights and tokenizer are read from a local folder; these make sure no call can reach the hub
    # (huggingface_hub reads them when first imported, so they are set before that import).
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    try:
        import transformers
    except ImportError as exc:
        raise DeepslimError(f"{what} needs transformers, which is not installed", hint=TEXT_EXTRA_HINT) from exc
    return transformers


class SentenceEmbedder(SerializableModule):
    """BERT + masked mean pooling + L2 normalisation; the defaults are all-MiniLM-L6-v2's sizes.
    ``tokenizer_dir`` names the folder whose tokenizer ``tokenizer`` reads: a registered name
    (``"minilm-l6"``) rather than a path, so a saved copy still finds it on another machine."""

    def __init__(self, vocab_size: int = 30522, hidden_size: int = 384, num_layers: int = 6, num_heads: int = 12,
                 intermediate_size: int = 1536, max_position_embeddings: int = 512, type_vocab_size: int = 2,
                 layer_norm_eps: float = 1e-12, hidden_act: str = "gelu", tokenizer_dir: str = "minilm-l6",
                 max_length: int = 256):
        super().__init__()
        transformers = require_text_extra("the sentence embedder")
        self.vocab_size, self.hidden_size = vocab_size, hidden_size
        self.num_layers, self.num_heads = num_layers, num_heads
        self.intermediate_size, self.max_position_embeddings = intermediate_size, max_position_embeddings
        self.type_vocab_size, self.layer_norm_eps, self.hidden_act = type_vocab_size, layer_norm_eps, hidden_act
        self.tokenizer_dir, self.max_length = tokenizer_dir, max_length
        config = transformers.BertConfig(
            vocab_size=vocab_size, hidden_size=hidden_size, num_hidden_layers=num_layers,
            num_attention_heads=num_heads, intermediate_size=intermediate_size,
            max_position_embeddings=max_position_embeddings, type_vocab_size=type_vocab_size,
            layer_norm_eps=layer_norm_eps, hidden_act=hidden_act)
        # No pooler: the embedding is the mean of the token states, so BERT's pooler would be dead weight.
        self.bert = transformers.BertModel(config, add_pooling_layer=False)

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        # clamp as sentence-transformers does: an all-padding row gives zeros, not NaN
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        return nn.functional.normalize(pooled, p=2, dim=1)

    @property
    def tokenizer(self):
        """The tokenizer (loaded once per process, offline); refused when its token ids or lengths would
        index past this model's embedding tables (a tokenizer that does not belong to the model)."""
        tokenizer = _tokenizer(self.tokenizer_dir)
        rows = self.bert.embeddings.word_embeddings.num_embeddings
        if len(tokenizer) > rows:
            raise DeepslimError(f"the tokenizer '{self.tokenizer_dir}' has {len(tokenizer):,} tokens but this "
                                f"embedder's vocabulary has {rows:,}: they do not belong together",
                                hint="give the embedder the tokenizer it was trained with (tokenizer_dir), or "
                                     "build it with vocab_size=len(tokenizer)")
        if self.max_length > self.max_position_embeddings:
            raise DeepslimError(f"max_length {self.max_length} exceeds the model's {self.max_position_embeddings} "
                                "positions", hint=f"build it with max_length <= {self.max_position_embeddings}")
        return tokenizer

    @torch.no_grad()
    def encode(self, texts: list[str], batch_size: int = 32) -> torch.Tensor:
        """Embeddings of ``texts`` as one ``(len(texts), hidden)`` tensor, in batches of ``batch_size``.

        Example:
            >>> model.encode(["a cat", "a dog"], batch_size=2).shape   # doctest: +SKIP
            torch.Size([2, 384])
        """
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise DeepslimError("encode takes a list of strings", hint='e.g. model.encode(["a cat", "a dog"])')
        if not isinstance(batch_size, int) or batch_size < 1:
            raise DeepslimError(f"batch_size must be a positive integer, got {batch_size!r}", hint="e.g. batch_size=32")
        from .evaluate import encode_texts  # it imports this module

        return encode_texts(self, list(texts), batch_size=batch_size)


def tokenize(model: SentenceEmbedder, texts: list[str], max_length: int | None = None) -> dict[str, torch.Tensor]:
    """``texts`` as the dict inputs the embedder takes: ``input_ids`` and ``attention_mask``, padded to
    the longest text and cut at ``max_length`` tokens (default: the model's, 256 as sentence-transformers).

    Example:
        >>> inputs = tokenize(model, ["a cat", "a dog"])          # doctest: +SKIP
        >>> sorted(inputs)                                        # doctest: +SKIP
        ['attention_mask', 'input_ids']
    """
    if not isinstance(model, SentenceEmbedder):
        raise DeepslimError(f"tokenize needs a sentence embedder, got {type(model).__name__}",
                            hint='load one with deepslim.load_pretrained("minilm-l6")')
    if isinstance(texts, str):
        texts = [texts]
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str) or not text.strip():
            raise DeepslimError(f"text {i} is {'empty' if isinstance(text, str) else type(text).__name__}: an "
                                "embedding needs at least one word", hint="drop empty texts before encoding")
    limit = max_length or model.max_length
    batch = model.tokenizer(texts, padding=True, truncation=True, max_length=limit, return_tensors="pt")
    if not _said_truncated and int(batch["attention_mask"].sum(1).max()) == limit:
        # one token past the limit tells a cut text from one exactly at it (and never tokenizes a book whole)
        longer = model.tokenizer([t for t, n in zip(texts, batch["attention_mask"].sum(1).tolist()) if n == limit],
                                 truncation=True, max_length=limit + 1)
        if any(len(ids) > limit for ids in longer["input_ids"]):
            _note_truncated(limit, "the model's maximum length" if max_length is None else f"max_length={limit}")
    # BERT's token_type_ids are all zeros for one sentence: forward does not take them
    return {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}


_said_truncated = False


def _note_truncated(limit: int, why: str) -> None:
    """Say once per process that long texts are cut (sentence-transformers cuts them silently)."""
    global _said_truncated
    _said_truncated = True
    log(f"note: texts longer than {limit} tokens are cut to their first {limit} ({why}); said once")


@functools.lru_cache(maxsize=None)
def _tokenizer(name: str):
    from .minilm import model_dir

    transformers = require_text_extra("the tokenizer")
    return transformers.AutoTokenizer.from_pretrained(str(model_dir(name)))
