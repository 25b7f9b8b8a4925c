"""Retrieval metrics from embeddings: recall@k and mean reciprocal rank (MRR).

Query ``i``'s right answer is document ``targets[i]`` (by default document ``i``, as in
``TextPairs``). Similarity is cosine; every query is ranked against every document, in chunks
of queries so the similarity matrix never has to be whole in memory.

A tie counts against the query: the rank is the number of documents at least as similar as the
right one, so a model that maps everything to one vector scores recall@1 near 0, not 100.

Example:
    >>> import torch
    >>> q = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> retrieval_metrics(q, q)
    {'recall@1': 100.0, 'recall@10': 100.0, 'mrr': 1.0, 'n': 2}
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..core import DeepslimError


def ranks(queries: torch.Tensor, documents: torch.Tensor, targets: torch.Tensor | None = None, *,
          chunk_size: int = 1024) -> torch.Tensor:
    """The 1-based rank of each query's right document by cosine similarity (ties count against it)."""
    if queries.ndim != 2 or documents.ndim != 2 or queries.shape[1] != documents.shape[1]:
        raise DeepslimError(f"embeddings must be (queries, dim) and (documents, dim), got {tuple(queries.shape)} "
                            f"and {tuple(documents.shape)}", hint="pass one embedding row per text")
    if len(queries) == 0 or len(documents) == 0:
        raise DeepslimError("no queries or no documents to rank", hint="pass at least one of each")
    if targets is None:
        if len(queries) != len(documents):
            raise DeepslimError(f"{len(queries)} queries but {len(documents)} documents and no targets",
                                hint="pass targets= (each query's document index) when the counts differ")
        targets = torch.arange(len(queries))
    targets = torch.as_tensor(targets, dtype=torch.long).to(queries.device)
    if targets.shape != (len(queries),) or targets.min() < 0 or targets.max() >= len(documents):
        raise DeepslimError(f"targets must be one document index in [0, {len(documents)}) per query",
                            hint="targets[i] is the row of documents that answers query i")
    if not (torch.isfinite(queries).all() and torch.isfinite(documents).all()):
        raise DeepslimError("embeddings contain NaN or infinity", hint="check the model's outputs")
    if chunk_size < 1:
        raise DeepslimError(f"chunk_size must be >= 1, got {chunk_size}")
    q = F.normalize(queries.float(), dim=1)
    d = F.normalize(documents.float(), dim=1).to(q.device)
    out = []
    for start in range(0, len(q), chunk_size):
        sims = q[start:start + chunk_size] @ d.T
        # the right document's score comes from the same matrix, so it ties with itself exactly
        right = sims.gather(1, targets[start:start + chunk_size, None])
        out.append((sims >= right).sum(dim=1))
    return torch.cat(out).cpu()


def retrieval_metrics(queries: torch.Tensor, documents: torch.Tensor, targets: torch.Tensor | None = None, *,
                      ks: tuple[int, ...] = (1, 10), chunk_size: int = 1024) -> dict:
    """``recall@k`` in percent for each ``k``, ``mrr`` in [0, 1] and ``n`` (the number of queries).

    Example:
        >>> import torch
        >>> retrieval_metrics(torch.eye(3), torch.eye(3)[[1, 0, 2]], ks=(1,))
        {'recall@1': 33.33333333333333, 'mrr': 0.5555555555555555, 'n': 3}
    """
    r = ranks(queries, documents, targets, chunk_size=chunk_size)
    metrics: dict = {f"recall@{k}": 100.0 * (r <= k).double().mean().item() for k in ks}
    metrics["mrr"] = (1.0 / r.double()).mean().item()
    metrics["n"] = len(r)
    return metrics
