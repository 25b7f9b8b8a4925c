"""TextBatches: unlabelled text as training batches, and distillation of a small embedder on them."""

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.core.inputs import call_model
from deepslim.text import SentenceEmbedder, TextBatches
from deepslim.train import TrainConfig, train
from deepslim.train.task import EmbeddingMatch

FIXTURE = "tests/data/fixtures/debian_small"
TINY = dict(hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64)


@pytest.fixture(scope="module")
def texts():
    data = deepslim.load_dataset("debian-descriptions", data_dir=FIXTURE)
    return list(data.train.queries) + list(data.train.documents)


def test_every_text_once_an_epoch_in_batches_of_similar_length(texts):
    torch.manual_seed(0)
    model = SentenceEmbedder(**TINY)
    batches = TextBatches(model, texts, batch_size=8, max_length=64, window=4)
    first, again, second = batches.order(), batches.order(), None
    batches.set_epoch(1)
    second = batches.order()
    for order in (first, second):
        assert sorted(i for b in order for i in b) == list(range(len(texts)))
        assert len(order) == len(batches) == -(-len(texts) // 8)  # the last batch may be short
    assert first == again and first != second  # a pure function of (seed, epoch)
    lengths = batches.lengths()
    padded = sum(len(b) * max(lengths[i] for i in b) for b in first)
    torch.manual_seed(1)
    random_batches = torch.randperm(len(texts)).split(8)
    padded_random = sum(len(b) * max(lengths[i] for i in b.tolist()) for b in random_batches)
    assert padded < 0.8 * padded_random  # sorting within windows cuts the padding
    inputs = next(iter(batches))
    assert sorted(inputs) == ["attention_mask", "input_ids"] and inputs["input_ids"].shape[1] <= 64
    in_order = TextBatches(model, texts[:20], batch_size=8, shuffle=False).order()
    assert in_order == [list(range(8)), list(range(8, 16)), list(range(16, 20))]


def test_a_student_distilled_on_raw_text_moves_toward_its_teacher(texts):
    torch.manual_seed(0)
    teacher = SentenceEmbedder(**TINY).eval()
    torch.manual_seed(1)
    student = SentenceEmbedder(**{**TINY, "num_layers": 1})  # other weights, one layer: far from the teacher
    held_out = TextBatches(teacher, texts[:64], batch_size=32, shuffle=False)
    task = EmbeddingMatch("cosine", teacher=teacher)

    def fidelity(model):
        with torch.no_grad():
            return torch.cat([task.scores(call_model(model.eval(), b), call_model(teacher, b)).cpu()
                              for b in held_out]).mean().item()

    before = fidelity(student)
    config = TrainConfig(epochs=2, batch_size=16, optimizer="adamw", lr=2e-3, weight_decay=0.0, augment=False)
    history = train(student, TextBatches(student, texts[64:], batch_size=16), config, task=task)
    assert len(history) == 2
    assert fidelity(student) > before + 0.5 * (1 - before), (before, fidelity(student))


def test_refusals(texts):
    model = SentenceEmbedder(**TINY)
    with pytest.raises(DeepslimError, match="list of strings"):
        TextBatches(model, "one text")
    with pytest.raises(DeepslimError, match="1 of the 3 texts are empty .*index 1"):
        TextBatches(model, ["a", "  ", "b"])
    with pytest.raises(DeepslimError, match="batch_size"):
        TextBatches(model, ["a"], batch_size=0)


def test_targets_computed_once_ride_along_with_their_texts(texts):
    from deepslim.text.evaluate import encode_texts

    torch.manual_seed(0)
    teacher = SentenceEmbedder(**TINY).eval()
    targets = encode_texts(teacher, texts, max_length=32)
    batches = TextBatches(teacher, texts, batch_size=8, max_length=32, targets=targets)
    for inputs, target in list(batches)[:3]:  # each row's target is the teacher's embedding of that very text
        with torch.no_grad():
            assert torch.allclose(teacher(**inputs), target, atol=1e-5)
    with pytest.raises(DeepslimError, match="one row per text"):
        TextBatches(teacher, texts, targets=targets[:-1])
