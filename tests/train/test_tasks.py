"""Training and evaluation on any iterable of batches, with a task: classification, embeddings, callables."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.data import BatchLoader
from deepslim.testing import tiny_data, toy_mlp
from deepslim.train import Callback, Classification, EmbeddingMatch, TrainConfig, Trainer, evaluate

CFG = TrainConfig(epochs=2, batch_size=16, lr=0.05, optimizer="adamw", augment=False)


class DictClassifier(nn.Module):
    """forward(input_ids, attention_mask) -> logits: a transformer's call signature, in miniature."""

    def __init__(self, vocab=20, dim=8, classes=3):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, classes)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        return self.head((self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1))


class TwoInputEmbedder(nn.Module):
    def __init__(self, dim=6, hidden=16, out=4):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * dim, hidden), nn.ReLU(), nn.Linear(hidden, out))

    def forward(self, a, b):
        return self.net(torch.cat([a, b], dim=1))


def dict_batches(n_batches=6, size=8, seed=0):
    """Token batches whose class is the majority of three token ranges: learnable by mean pooling."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        y = torch.randint(0, 3, (size,), generator=g)
        ids = (y[:, None] * 6 + torch.randint(0, 6, (size, 5), generator=g)).clamp(max=19)
        out.append(({"input_ids": ids, "attention_mask": torch.ones(size, 5, dtype=torch.long)}, y))
    return out


def embedding_batches(n_batches=4, sizes=(8, 8, 5, 3), seed=0, target=None):
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n_batches):
        a, b = torch.randn(sizes[i], 6, generator=g), torch.randn(sizes[i], 6, generator=g)
        out.append(((a, b), None if target is None else target(a, b)))
    return out


def state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def unchanged(model, before):
    return all(torch.equal(before[k].cpu(), v.cpu()) for k, v in model.state_dict().items())  # a verb may move it


def test_a_list_of_batches_trains_exactly_like_tensor_data():
    """The generic path and the TensorData path are the same numerics: same batches in, same weights out."""
    data = tiny_data(n_train=96)
    cfg = TrainConfig(epochs=1, batch_size=32, lr=0.05, augment=False)
    torch.manual_seed(0)
    a = toy_mlp()
    b = copy.deepcopy(a)
    history_a = Trainer(a, cfg).fit(data.train, val_data=data.val)
    loader = BatchLoader(data.train, cfg.batch_size, shuffle=True, seed=cfg.seed, drop_last=True)
    history_b = Trainer(b, cfg).fit(list(loader), val_data=list(BatchLoader(data.val, 1000)))
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in (history_a[0], history_b[0])]
    assert strip[0] == strip[1]


def test_dict_inputs_train_and_evaluate_as_classification():
    torch.manual_seed(0)
    model, train, test = DictClassifier(), dict_batches(), dict_batches(seed=1)
    before = evaluate(model, test)
    history = Trainer(model, CFG).fit(train, val_data=test)
    after = evaluate(model, test)
    assert set(after) == {"accuracy", "loss", "n"} and after["n"] == 48
    assert after["accuracy"] > before["accuracy"] and after["loss"] < before["loss"]
    assert {"train_accuracy", "val_accuracy", "val_loss"} <= set(history[-1])


def test_tuple_inputs_with_a_regression_loss_fn():
    torch.manual_seed(0)
    model = TwoInputEmbedder(out=1)
    batches = embedding_batches(target=lambda a, b: (a - b).sum(1, keepdim=True))
    before = evaluate(model, batches, loss_fn=F.mse_loss)
    history = Trainer(model, TrainConfig(epochs=20, lr=0.01, optimizer="adamw"), loss_fn=F.mse_loss).fit(batches)
    after = evaluate(model, batches, loss_fn=F.mse_loss)
    assert set(after) == {"loss", "n"} and after["n"] == 24  # loss_fn alone: only the loss is reported
    assert after["loss"] < 0.5 * before["loss"]
    assert set(history[-1]) == {"epoch", "train_loss", "lr", "seconds"}


def test_embedding_match_metric_is_the_mean_over_all_samples():
    torch.manual_seed(0)
    model, teacher = TwoInputEmbedder(), TwoInputEmbedder()
    batches = embedding_batches()  # uneven batch sizes: a mean of batch means would differ
    a = torch.cat([b[0][0] for b in batches])
    b = torch.cat([b[0][1] for b in batches])
    with torch.no_grad():
        cosine = F.cosine_similarity(model(a, b), teacher(a, b), dim=1).mean().item()
        mse = (model(a, b) - teacher(a, b)).pow(2).mean(1).mean().item()
    teacher.train()
    result = evaluate(model, batches, task=EmbeddingMatch("cosine", teacher=teacher))
    assert result["n"] == 24 and result["cosine"] == pytest.approx(cosine, abs=1e-6)
    assert result["loss"] == pytest.approx(1 - cosine, abs=1e-6)
    assert evaluate(model, batches, task=EmbeddingMatch("mse", teacher=teacher))["mse"] == pytest.approx(mse, rel=1e-5)
    assert teacher.training  # the teacher's mode is restored
    with_targets = [((x, y), teacher(x, y).detach()) for (x, y), _ in batches]
    assert evaluate(model, with_targets, task=EmbeddingMatch("cosine"))["cosine"] == pytest.approx(cosine, abs=1e-6)


def test_embedding_match_training_raises_the_cosine_and_a_metric_callable_is_reported():
    torch.manual_seed(0)
    model, teacher = TwoInputEmbedder(), TwoInputEmbedder()
    batches = embedding_batches()
    task = EmbeddingMatch("cosine", teacher=teacher)
    before = evaluate(model, batches, task=task)["cosine"]
    cfg = TrainConfig(epochs=15, lr=0.01, optimizer="adamw")
    history = Trainer(model, cfg, task=task).fit(batches, val_data=batches)
    assert history[-1]["val_cosine"] > before + 0.3 and "train_cosine" in history[-1]

    def agreement(outputs, target):  # a batch mean is spread over the batch's samples
        return (outputs.argmax(1) == target.argmax(1)).float().mean()

    result = evaluate(model, batches, task=task, metric=agreement)
    assert 0.0 <= result["agreement"] <= 1.0 and result["n"] == 24


def test_resume_over_a_list_of_batches_is_by_epochs(tmp_path):
    batches = dict_batches()
    cfg = TrainConfig(epochs=2, lr=0.05, optimizer="adamw")
    torch.manual_seed(0)
    straight = DictClassifier()
    interrupted = copy.deepcopy(straight)
    Trainer(straight, cfg).fit(batches)

    class StopAfterFirstEpoch(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            trainer.stop_training = True

    ckpt = tmp_path / "last.pt"
    Trainer(interrupted, cfg, callbacks=[StopAfterFirstEpoch()]).fit(batches, checkpoint_path=ckpt)
    resumed = DictClassifier()
    history = Trainer(resumed, cfg).fit(batches, checkpoint_path=ckpt, resume=True)
    assert [h["epoch"] for h in history] == [1, 2]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_a_source_with_set_epoch_hears_each_epoch():
    class Source:
        def __init__(self):
            self.epochs, self.batches = [], dict_batches(2)

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __iter__(self):
            return iter(self.batches)

    source = Source()  # no __len__: the batches are counted with one pass
    Trainer(DictClassifier(), TrainConfig(epochs=3, lr=0.01)).fit(source)
    assert source.epochs == [0, 1, 2]


def bad(match, fn, model):
    before = state(model)
    with pytest.raises(DeepslimError, match=match) as info:
        fn()
    assert "\n" not in str(info.value) and info.value.hint
    assert unchanged(model, before)


def test_bad_data_gets_one_line_errors_and_the_model_is_left_untouched():
    model = DictClassifier()
    good = dict_batches(3)
    trainer = Trainer(model, CFG)
    mixed = [good[0], (good[1][0]["input_ids"], good[1][1])]
    bad("batch 1 of the data has a different structure", lambda: trainer.fit(mixed), model)
    bad("batch 1 of the data has a different structure", lambda: evaluate(model, mixed), model)
    unlabelled = [b[0] for b in good]
    bad("carry no target, but the task Classification", lambda: trainer.fit(unlabelled), model)
    bad("carry no target", lambda: evaluate(model, unlabelled), model)
    bad("batch 1 of the data lacks a target", lambda: trainer.fit([good[0], good[1][0]]), model)
    bad("takes no argument named 'token_type_ids'",
        lambda: trainer.fit([({**good[0][0], "token_type_ids": good[0][0]["input_ids"]}, good[0][1])]), model)
    floats = [(b[0], b[1].float()) for b in good]
    bad("integer class labels", lambda: trainer.fit(floats), model)
    bad("one-shot iterator", lambda: trainer.fit(iter(good)), model)
    bad("must be an iterable of batches", lambda: trainer.fit(good[0][0]), model)
    bad(r"model's embeddings have shape \(2, 3\) but the teacher's \(2, 5\)",
        lambda: evaluate(model, good, task=EmbeddingMatch("cosine", teacher=DictClassifier(classes=5))), model)
    bad(r"TwoInputEmbedder.forward\(a, b\) takes no argument named 'input_ids'",
        lambda: evaluate(model, good, task=EmbeddingMatch("cosine", teacher=TwoInputEmbedder())), model)


def test_outputs_that_are_not_tensors_are_refused():
    class Strings(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(6, 2)

        def forward(self, a, b):
            return {"text": "not a tensor", "logits": self.fc(a)}

    model = Strings()
    bad("values that are not tensors", lambda: evaluate(model, embedding_batches(target=lambda a, b: a[:, 0] > 0)),
        model)


def test_task_and_callable_arguments_are_checked():
    with pytest.raises(DeepslimError, match="metric must be one of cosine, mse"):
        EmbeddingMatch("dot")
    with pytest.raises(DeepslimError, match="task must be a deepslim Task"):
        Trainer(toy_mlp(), task="classification")
    with pytest.raises(DeepslimError, match="loss_fn must be a callable"):
        Trainer(toy_mlp(), loss_fn="mse")
    assert Classification(label_smoothing=0.1).loss(torch.zeros(2, 3), torch.tensor([0, 1])) > 0
    assert deepslim.EmbeddingMatch is EmbeddingMatch and deepslim.Classification is Classification


def test_batchnorm_recalibration_takes_dict_inputs():
    from deepslim.train import recalibrate_batchnorm_

    class Normed(DictClassifier):
        def __init__(self):
            super().__init__()
            self.norm = nn.BatchNorm1d(3)

        def forward(self, input_ids, attention_mask):
            return self.norm(super().forward(input_ids, attention_mask))

    model = Normed().eval()
    inputs = {k: torch.cat([b[0][k] for b in dict_batches()]) for k in ("input_ids", "attention_mask")}
    assert recalibrate_batchnorm_(model, inputs, batch_size=8) == 1  # equal batches: the mean of means is exact
    with torch.no_grad():
        logits = DictClassifier.forward(model, **inputs)
    assert torch.allclose(model.norm.running_mean, logits.mean(0), atol=1e-5) and not model.training
