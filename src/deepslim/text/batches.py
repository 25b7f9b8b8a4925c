"""Unlabelled text as re-iterable training batches for an embedder (distillation on raw text).

``TextBatches(model, texts)`` tokenizes in batches of similar length, as a CPU wastes most of a
batch's work on padding otherwise: each epoch shuffles the texts (seeded by epoch), sorts each window
of ``window`` batches by length, cuts it into batches and shuffles the batch order. The ``Trainer``
calls ``set_epoch``, so every epoch has its own order and a resumed run sees the same batches.
Batches are dict inputs without a target: pair them with a task that supplies the reference, such as
``EmbeddingMatch(teacher=...)``. With ``targets`` (one row per text, e.g. a teacher's embeddings computed
once by ``encode_texts``) every batch is ``(inputs, targets[rows])``: distilling several students from one
teacher then runs the teacher once, not once per student and epoch.

Example:
    >>> from deepslim.text import TextBatches                                    # doctest: +SKIP
    >>> batches = TextBatches(model, ["a cat", "a dog", "a cow"], batch_size=2)  # doctest: +SKIP
    >>> len(batches), sorted(next(iter(batches)))                                # doctest: +SKIP
    (2, ['attention_mask', 'input_ids'])
"""

from __future__ import annotations

import torch

from ..core import DeepslimError
from .embedder import SentenceEmbedder, tokenize


class TextBatches:
    """Tokenized batches of ``texts`` for ``model``'s tokenizer, cut at ``max_length`` tokens; the last
    batch may be smaller. ``shuffle=False`` keeps the input order (evaluation)."""

    def __init__(self, model: SentenceEmbedder, texts: list[str], batch_size: int = 32, max_length: int = 128, *,
                 shuffle: bool = True, seed: int = 0, window: int = 50, targets: torch.Tensor | None = None):
        if isinstance(texts, str) or not all(isinstance(t, str) for t in texts):
            raise DeepslimError("TextBatches takes a list of strings", hint='e.g. TextBatches(model, ["a cat"])')
        empty = [i for i, t in enumerate(texts) if not t.strip()]
        if empty:
            raise DeepslimError(f"{len(empty)} of the {len(texts)} texts are empty (the first at index {empty[0]})",
                                hint="drop empty texts before training on them")
        for name, value in (("batch_size", batch_size), ("max_length", max_length), ("window", window)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise DeepslimError(f"{name} must be a positive integer, got {value!r}")
        if targets is not None and (not isinstance(targets, torch.Tensor) or len(targets) != len(texts)):
            raise DeepslimError(f"targets must be a tensor with one row per text ({len(texts)})",
                                hint="e.g. targets=encode_texts(teacher, texts, max_length=...)")
        self.model, self.texts, self.targets = model, list(texts), targets
        self.batch_size, self.max_length = batch_size, max_length
        self.shuffle, self.seed, self.window, self.epoch = shuffle, seed, window, 0
        self._lengths = None

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return -(-len(self.texts) // self.batch_size)

    def lengths(self) -> list[int]:
        """Each text's token count (after truncation), computed once."""
        if self._lengths is None:
            ids = self.model.tokenizer(self.texts, truncation=True, max_length=self.max_length)["input_ids"]
            self._lengths = [len(i) for i in ids]
        return self._lengths

    def order(self) -> list[list[int]]:
        """This epoch's batches as lists of text indices."""
        n, size = len(self.texts), self.batch_size
        if not self.shuffle:
            return [list(range(i, min(i + size, n))) for i in range(0, n, size)]
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        perm = torch.randperm(n, generator=generator).tolist()
        lengths, batches = self.lengths(), []
        span = size * self.window
        for start in range(0, n, span):
            chunk = sorted(perm[start:start + span], key=lengths.__getitem__)
            batches += [chunk[i:i + size] for i in range(0, len(chunk), size)]
        return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]

    def __iter__(self):
        for rows in self.order():
            inputs = tokenize(self.model, [self.texts[r] for r in rows], max_length=self.max_length)
            yield inputs if self.targets is None else (inputs, self.targets[rows])
