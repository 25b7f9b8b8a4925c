"""Foreign models for contract tests: the kinds of model a user brings, none of them in the zoo.

Each ``ModelCase`` bundles a model builder, example inputs (a batch of 2) and a few batches of
``(inputs, target)`` data for its task, so a test can run any verb on it:

- ``two_input``: a CNN image branch plus a feature vector, called ``model(image, features)``;
- ``dict_input``: an embedding model called ``model(**{"input_ids": ..., "attention_mask": ...})``,
  judged by its output embedding (no classes);
- ``tiny_bert``: a 2-layer Hugging Face ``BertModel`` with random weights (no download) under a
  classifier head, called with a dict; needs ``transformers``;
- ``tied``: a token classifier whose output layer shares the embedding's ``Parameter`` and which
  registers buffers (persistent and not), called with one int64 tensor.

The classes are plain ``nn.Module`` subclasses, as a user would write them: they keep their
constructor arguments as attributes (what ``deepslim.save`` reads to rebuild a module).

Example:
    >>> from deepslim.testing_models import model_cases
    >>> case = model_cases()["two_input"]
    >>> model = case.build()
    >>> model(*case.example).shape
    torch.Size([2, 3])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn

SEED = 0


@dataclass
class ModelCase:
    """A foreign model and the data to exercise it.

    ``task`` is ``"classification"`` (targets are class indices) or ``"embedding"`` (targets are
    vectors the output should match). ``ties`` names parameters that must stay one ``Parameter``;
    ``allow_modules`` is what ``deepslim.load`` needs beyond torch.nn/deepslim; ``not_applicable``
    maps a verb name to the reason it cannot apply to this model (the verb must refuse it);
    ``example_macs`` is the analytic MAC count of ``example``, where it is easy to state;
    ``requires`` names the optional packages ``build`` imports.
    """

    name: str
    build: Callable[[], nn.Module]
    example: Any
    batches: list
    task: str
    dynamic_sequence: bool = False
    ties: tuple = ()
    allow_modules: tuple = ()
    not_applicable: dict = field(default_factory=dict)
    example_macs: int | None = None
    requires: tuple = ()

    def fresh(self) -> nn.Module:
        """A new model in eval mode, with the same weights on every call (the global RNG is left alone)."""
        with torch.random.fork_rng():
            torch.manual_seed(SEED)
            return self.build().eval()


class TwoInputNet(nn.Module):
    """Image branch (conv, BN, conv) and feature branch (linear), joined by a classifier head."""

    def __init__(self, channels: int = 8, features: int = 6, num_classes: int = 3):
        super().__init__()
        self.channels, self.features, self.num_classes = channels, features, num_classes
        self.conv1 = nn.Conv2d(1, channels, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.side = nn.Linear(features, 16)
        self.head = nn.Linear(channels + 16, num_classes)

    def forward(self, image, features):
        x = torch.relu(self.bn1(self.conv1(image)))
        x = self.pool(torch.relu(self.conv2(x))).flatten(1)
        return self.head(torch.cat([x, torch.relu(self.side(features))], dim=1))


def _masked_mean(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)


class DictInputEncoder(nn.Module):
    """Sentence-embedding style: token embeddings, masked mean pooling, a two-layer projection."""

    def __init__(self, vocab_size: int = 50, dim: int = 16, hidden: int = 32, out_dim: int = 16):
        super().__init__()
        self.vocab_size, self.dim, self.hidden, self.out_dim = vocab_size, dim, hidden, out_dim
        self.embed = nn.Embedding(vocab_size, dim)
        self.proj = nn.Linear(dim, hidden)
        self.out = nn.Linear(hidden, out_dim)

    def forward(self, input_ids, attention_mask):
        pooled = _masked_mean(self.embed(input_ids), attention_mask)
        return self.out(torch.relu(self.proj(pooled)))


class TinyBertClassifier(nn.Module):
    """A 2-layer Hugging Face BERT (random weights) with a mean-pooled classifier head."""

    def __init__(self, vocab_size: int = 100, hidden_size: int = 32, num_heads: int = 4,
                 intermediate_size: int = 64, num_layers: int = 2, num_classes: int = 2):
        super().__init__()
        from transformers import BertConfig, BertModel  # an optional dependency: only this model needs it

        self.vocab_size, self.hidden_size, self.num_heads = vocab_size, hidden_size, num_heads
        self.intermediate_size, self.num_layers, self.num_classes = intermediate_size, num_layers, num_classes
        config = BertConfig(vocab_size=vocab_size, hidden_size=hidden_size, num_attention_heads=num_heads,
                            intermediate_size=intermediate_size, num_hidden_layers=num_layers,
                            max_position_embeddings=64)
        self.bert = BertModel(config, add_pooling_layer=False)
        self.head = nn.Linear(hidden_size, num_classes)

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return self.head(_masked_mean(hidden, attention_mask))


class TiedTokenClassifier(nn.Module):
    """Embedding whose weight the output layer shares (weight tying), plus registered buffers:
    fixed (not learned) ``positions`` and ``scale`` (saved) and a ``calls`` counter (not saved)."""

    def __init__(self, vocab_size: int = 40, dim: int = 16, hidden: int = 32, max_len: int = 16):
        super().__init__()
        self.vocab_size, self.dim, self.hidden, self.max_len = vocab_size, dim, hidden, max_len
        self.embed = nn.Embedding(vocab_size, dim)
        self.register_buffer("positions", 0.1 * torch.randn(max_len, dim))
        self.register_buffer("scale", torch.tensor(0.5))
        self.register_buffer("calls", torch.zeros((), dtype=torch.long), persistent=False)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.decoder = nn.Linear(dim, vocab_size, bias=False)
        self.decoder.weight = self.embed.weight  # the tie: one Parameter, two uses

    def forward(self, ids):
        h = (self.embed(ids) + self.positions[: ids.shape[1]]).mean(1) * self.scale
        h = h + self.fc2(torch.relu(self.fc1(h)))
        return self.decoder(h)


def _ids(generator: torch.Generator, n: int, length: int, vocab: int) -> dict:
    ids = torch.randint(1, vocab, (n, length), generator=generator)
    lengths = torch.randint(2, length + 1, (n,), generator=generator)
    mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
    return {"input_ids": ids * mask, "attention_mask": mask}


def model_cases(n_batches: int = 3, batch: int = 8) -> dict[str, ModelCase]:
    """Every foreign model case by name (``tiny_bert`` builds only where ``transformers`` is installed)."""
    g = torch.Generator().manual_seed(SEED)
    cases: list[ModelCase] = []

    def two_input(n):
        return torch.randn(n, 1, 12, 12, generator=g), torch.randn(n, 6, generator=g)

    no_blocks = {"BlockDropping": "no residual block inside an nn.Sequential"}
    no_heads = {"HeadPruning": "the model has no attention heads",
                "LayerDropping": "the model has no stack of identical encoder layers", **no_blocks}
    per_sample = (1 * 8 * 9 + 8 * 8 * 9) * 12 * 12 + 6 * 16 + 24 * 3  # conv1, conv2 (3x3 on 12x12), side, head
    cases.append(ModelCase(
        "two_input", TwoInputNet, two_input(2),
        [(two_input(batch), torch.randint(0, 3, (batch,), generator=g)) for _ in range(n_batches)],
        "classification", example_macs=2 * per_sample,
        not_applicable={**no_heads, "FFNPruning": "no Linear feeds another through activations only (a concat "
                                                  "sits between side and head)"}))

    cases.append(ModelCase(
        "dict_input", DictInputEncoder, _ids(g, 2, 10, 50),
        [(_ids(g, batch, 10, 50), torch.randn(batch, 16, generator=g)) for _ in range(n_batches)],
        "embedding", dynamic_sequence=True, not_applicable=no_heads))

    cases.append(ModelCase(
        "tiny_bert", TinyBertClassifier, _ids(g, 2, 12, 100),
        [(_ids(g, batch, 12, 100), torch.randint(0, 2, (batch,), generator=g)) for _ in range(n_batches)],
        "classification", dynamic_sequence=True, allow_modules=("transformers",), requires=("transformers",),
        not_applicable=no_blocks))  # BERT layers sit in a ModuleList and take a mask: layer_dropping's job

    def tied_ids(n):
        return torch.randint(0, 40, (n, 8), generator=g)

    tied_batches = [tied_ids(batch) for _ in range(n_batches)]
    cases.append(ModelCase(
        "tied", TiedTokenClassifier, tied_ids(2), [(ids, ids[:, 0]) for ids in tied_batches],
        "classification", dynamic_sequence=True, ties=(("embed.weight", "decoder.weight"),),
        not_applicable=no_heads))
    return {case.name: case for case in cases}
