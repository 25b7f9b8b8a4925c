"""Retrieval quality of a sentence embedder on text pairs, in PyTorch or as an ONNX file on ONNX Runtime.

Both encode every query and every document of ``pairs`` (``TextPairs``) and rank each query's document
among all of them (``train.retrieval``): recall@1, recall@10 and MRR over the whole split. Texts are
encoded in batches of similar length (less padding, the same embeddings), at most the model's
``max_length`` tokens each.

Example:
    >>> from deepslim.text.evaluate import evaluate_retrieval                    # doctest: +SKIP
    >>> evaluate_retrieval(model, data.test)["recall@1"]                         # doctest: +SKIP
    76.98...
    >>> evaluate_retrieval(model, data.test, onnx="model.int8.onnx")["recall@1"]  # doctest: +SKIP
    76.68...
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..core import DeepslimError, eval_mode, progress
from .embedder import SentenceEmbedder, tokenize


def _by_length(model: SentenceEmbedder, texts: list[str], batch_size: int, max_length: int) -> list[list[int]]:
    lengths = [len(ids) for ids in model.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]]
    order = sorted(range(len(texts)), key=lengths.__getitem__)
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def encode_texts(model: SentenceEmbedder, texts: list[str], *, onnx: str | Path | None = None, batch_size: int = 64,
                 threads: int | None = None, max_length: int | None = None, desc: str = "encode") -> torch.Tensor:
    """Embeddings of ``texts`` in input order: ``model`` in PyTorch, or the ONNX file ``onnx`` (``model``
    then only tokenizes); texts are cut at ``max_length`` tokens (default: the model's)."""
    if not isinstance(model, SentenceEmbedder):
        raise DeepslimError(f"retrieval needs a sentence embedder, got {type(model).__name__}",
                            hint='e.g. deepslim.load_pretrained("minilm-l6"), or a model saved from one')
    if onnx is not None:
        from ..export.onnx import onnx_session
        from ..export.onnx_io import ort_feed

        session = onnx_session(onnx, threads=threads)
        run = lambda inputs: torch.from_numpy(session.run(None, ort_feed(session, inputs))[0])  # noqa: E731
    else:
        device = next(model.parameters()).device
        run = lambda inputs: model(**{k: v.to(device) for k, v in inputs.items()}).cpu()  # noqa: E731
    out = torch.empty(len(texts), model.hidden_size)
    with eval_mode(model), torch.inference_mode():
        limit = max_length or model.max_length
        for rows in progress(_by_length(model, texts, batch_size, limit), desc=desc):
            # the caller's max_length as given: None lets tokenize name the model's own limit
            out[rows] = run(tokenize(model, [texts[r] for r in rows], max_length=max_length)).float()
    return out


def evaluate_retrieval(model: SentenceEmbedder, pairs, *, onnx: str | Path | None = None, batch_size: int = 64,
                       threads: int | None = None) -> dict:
    """``recall@1``, ``recall@10`` (percent), ``mrr`` and ``n`` (pairs) of ``model`` (or ``onnx``) on ``pairs``."""
    from ..train.retrieval import retrieval_metrics

    if len(pairs) == 0:
        raise DeepslimError("no text pairs to evaluate", hint="check the data set's test split")
    texts = list(pairs.queries) + list(pairs.documents)
    emb = encode_texts(model, texts, onnx=onnx, batch_size=batch_size, threads=threads, desc="test")
    return retrieval_metrics(emb[:len(pairs)], emb[len(pairs):])
