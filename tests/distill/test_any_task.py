"""Distillation beyond image classifiers: any inputs, iterable batches, embedding students."""

import copy

import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.data import BatchLoader
from deepslim.distill import KD, Distillation, distill
from deepslim.testing import tiny_data, toy_mlp
from deepslim.train import EmbeddingMatch, TrainConfig, evaluate


class TwoInputEmbedder(nn.Module):
    """forward(query, context) -> an embedding: a sentence-pair encoder, in miniature."""

    def __init__(self, dim=6, hidden=16, out=4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, query, context):
        return self.net(torch.cat([query, context], dim=1))


class DictEmbedder(nn.Module):
    def __init__(self, hidden=16):
        super().__init__()
        self.inner = TwoInputEmbedder(hidden=hidden)

    def forward(self, query, context):
        return {"embedding": self.inner(query, context)}  # a dict of tensors, as Hugging Face models return


def unlabelled(n_batches=6, size=16, seed=0, as_dict=False):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        q, c = torch.randn(size, 6, generator=g), torch.randn(size, 6, generator=g)
        out.append({"query": q, "context": c} if as_dict else ((q, c), None))
    return out


@pytest.fixture
def pair():
    torch.manual_seed(0)
    return TwoInputEmbedder(hidden=32).eval(), TwoInputEmbedder(hidden=8)


def test_an_embedding_student_moves_toward_its_teacher(pair):
    teacher, student = pair
    train, val = unlabelled(), unlabelled(seed=1)
    judge = EmbeddingMatch("cosine", teacher=teacher)
    before = evaluate(student, val, task=judge)["cosine"]
    frozen = copy.deepcopy(teacher.state_dict())
    history = distill(student, teacher, train, TrainConfig(epochs=10, lr=0.02, optimizer="adamw"),
                      KD(alpha=1.0), task=EmbeddingMatch("cosine"), val_data=val)
    after = evaluate(student, val, task=judge)["cosine"]
    assert after > before + 0.3
    assert history[-1]["val_cosine"] == pytest.approx(after)  # validation judges the match to the teacher
    assert all(torch.equal(frozen[k].cpu(), v.cpu()) for k, v in teacher.state_dict().items())
    assert all(p.requires_grad for p in teacher.parameters())


def test_dict_batches_and_dict_outputs_with_mse(pair):
    torch.manual_seed(1)
    teacher, student = DictEmbedder(hidden=32).eval(), DictEmbedder(hidden=8)
    val = unlabelled(seed=1, as_dict=True)
    judge = EmbeddingMatch("mse", teacher=teacher)
    before = evaluate(student, val, task=judge)["mse"]
    distill(student, teacher, unlabelled(as_dict=True), TrainConfig(epochs=10, lr=0.01, optimizer="adamw"),
            task=EmbeddingMatch("mse"))  # default alpha 0.9: the teacher's term alone, scaled
    assert evaluate(student, val, task=judge)["mse"] < 0.5 * before


def test_classification_kd_on_a_list_of_batches_equals_kd_on_tensor_data():
    data = tiny_data(n_train=96)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05, augment=False)
    torch.manual_seed(0)
    teacher, student = toy_mlp(hidden=64).eval(), toy_mlp()
    other = copy.deepcopy(student)
    distill(student, teacher, data.train, cfg, KD(temperature=2.0))
    batches = list(BatchLoader(data.train, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True))
    distill(other, teacher, batches, cfg, KD(temperature=2.0))
    for (name, p), q in zip(student.state_dict().items(), other.state_dict().values()):
        assert torch.equal(p, q), name


def test_bad_input_is_refused_before_training(pair):
    teacher, student = pair
    before = copy.deepcopy(student.state_dict())
    cfg = TrainConfig(epochs=1)
    with pytest.raises(DeepslimError, match=r"teacher's outputs have shape \(2, 4\) but the student's \(2, 3\)"):
        distill(TwoInputEmbedder(out=3), teacher, unlabelled(), cfg, task=EmbeddingMatch())
    with pytest.raises(DeepslimError, match="carry no target"):
        distill(student, teacher, unlabelled(), cfg, KD(alpha=0.0), task=EmbeddingMatch())
    with pytest.raises(DeepslimError, match="only TensorData has"):
        distill(student, teacher, unlabelled(), cfg, KD(cache_teacher=True), task=EmbeddingMatch())
    with pytest.raises(DeepslimError, match="different structure"):
        distill(student, teacher, [*unlabelled(2), unlabelled(1, as_dict=True)[0]], cfg, task=EmbeddingMatch())
    with pytest.raises(DeepslimError, match=r"forward\(query, context\) takes no argument named 'q'"):
        Distillation(student, teacher, KD(), {"q": torch.zeros(2, 6), "context": torch.zeros(2, 6)})
    assert all(torch.equal(before[k].cpu(), v.cpu()) for k, v in student.state_dict().items())
    assert all(p.requires_grad for p in teacher.parameters())  # a refused cache left the teacher as it was
    assert deepslim.distill is distill
