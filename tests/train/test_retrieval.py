"""Retrieval metrics on tiny hand-made embeddings whose ranks are known exactly."""

import pytest
import torch

from deepslim.core import DeepslimError
from deepslim.train.retrieval import ranks, retrieval_metrics

# Three documents on the unit circle at 0, 45 and 90 degrees (lengths differ: cosine ignores them).
DOCS = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, 3.0]])


def test_ranks_and_metrics_are_exact():
    # query 0 points at doc 0 (rank 1); query 1 at 80 degrees is nearest doc 2, then doc 1 (rank 2);
    # query 2 at 0 degrees is farthest from doc 2 (rank 3)
    angle = torch.deg2rad(torch.tensor(80.0))
    queries = torch.stack([torch.tensor([1.0, 0.0]), torch.stack([angle.cos(), angle.sin()]), torch.tensor([5.0, 0.0])])
    assert ranks(queries, DOCS).tolist() == [1, 2, 3]
    m = retrieval_metrics(queries, DOCS, ks=(1, 2, 10))
    assert m["recall@1"] == pytest.approx(100 / 3) and m["recall@2"] == pytest.approx(200 / 3)
    assert m["recall@10"] == 100.0 and m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3) / 3) and m["n"] == 3


def test_default_ks_and_explicit_targets():
    queries = torch.tensor([[0.0, 1.0], [1.0, 0.0]])
    assert retrieval_metrics(queries, DOCS, targets=[2, 0]) == {"recall@1": 100.0, "recall@10": 100.0, "mrr": 1.0,
                                                                "n": 2}
    assert ranks(queries, DOCS, torch.tensor([0, 2])).tolist() == [3, 3]


def test_ties_count_against_the_query():
    same = torch.ones(4, 3)
    assert ranks(same, same).tolist() == [4, 4, 4, 4]
    assert retrieval_metrics(same, same)["recall@1"] == 0.0


def test_chunking_does_not_change_the_result():
    g = torch.Generator().manual_seed(0)
    q, d = torch.randn(50, 8, generator=g), torch.randn(50, 8, generator=g)
    whole = ranks(q, d, chunk_size=1000)
    assert torch.equal(ranks(q, d, chunk_size=7), whole) and torch.equal(ranks(q, d, chunk_size=1), whole)
    # brute force: count the documents at least as similar as the right one
    sims = torch.nn.functional.cosine_similarity(q[:, None], d[None], dim=-1)
    assert torch.equal(whole, (sims >= sims.diagonal()[:, None] - 1e-6).sum(1))


@pytest.mark.parametrize("args, kwargs, message", [
    ((torch.ones(3), DOCS), {}, "embeddings must be"),
    ((torch.ones(2, 3), DOCS), {}, "embeddings must be"),
    ((torch.ones(2, 2), DOCS), {}, "no targets"),
    ((torch.ones(2, 2), DOCS), {"targets": [0, 3]}, "targets must be"),
    ((torch.zeros(0, 2), DOCS), {}, "no queries"),
    ((torch.tensor([[float("nan"), 0.0]] * 3), DOCS), {}, "NaN"),
    ((DOCS, DOCS), {"chunk_size": 0}, "chunk_size"),
])
def test_bad_input_is_refused(args, kwargs, message):
    with pytest.raises(DeepslimError, match=message):
        ranks(*args, **kwargs)
