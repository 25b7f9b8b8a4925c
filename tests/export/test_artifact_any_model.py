"""save/load of model classes defined outside deepslim (a test module, a script's __main__), with tied
weights and buffers."""

import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError


class TiedLM(nn.Module):
    """A language-model head tied to its embedding, with a persistent and a non-persistent buffer."""

    def __init__(self, vocab=30, width=8):
        super().__init__()
        self.vocab, self.width = vocab, width
        self.embed = nn.Embedding(vocab, width)
        self.mix = nn.Linear(width, width)
        self.head = nn.Linear(width, vocab, bias=False)
        self.head.weight = self.embed.weight
        self.register_buffer("scale", torch.ones(width))
        self.register_buffer("positions", torch.arange(64), persistent=False)

    def forward(self, input_ids):
        x = self.embed(input_ids) * self.scale + self.positions[: input_ids.shape[1], None] * 0.01
        return self.head(torch.tanh(self.mix(x)))


ALLOW = (TiedLM.__module__.split(".")[0],)  # the test module: its name depends on how pytest imports it


def trained_copy():
    torch.manual_seed(0)
    model = TiedLM(vocab=30, width=8)
    with torch.no_grad():
        model.embed.weight.mul_(3.0)  # changes both ends of the tie
        model.scale.fill_(0.5)
    return model.eval()


def test_tie_and_buffers_survive_save_and_load(tmp_path):
    model = trained_copy()
    ids = torch.randint(0, 30, (2, 5))
    deepslim.save(model, tmp_path / "lm", allow_modules=ALLOW)
    loaded = deepslim.load(tmp_path / "lm", allow_modules=ALLOW)
    assert type(loaded) is TiedLM
    assert loaded.head.weight is loaded.embed.weight  # one Parameter again, not two equal copies
    assert torch.equal(loaded.scale, torch.full((8,), 0.5))
    assert torch.equal(loaded(ids), model(ids))
    with torch.no_grad():
        loaded.embed.weight.zero_()
    assert not loaded.head.weight.any()


def test_a_class_outside_the_allow_list_names_allow_modules(tmp_path):
    with pytest.raises(DeepslimError) as err:
        deepslim.save(trained_copy(), tmp_path / "lm")
    assert "allow_modules" in err.value.message and f"allow_modules=('{ALLOW[0]}',)" in err.value.hint
    deepslim.save(trained_copy(), tmp_path / "lm", allow_modules=ALLOW)
    with pytest.raises(DeepslimError) as err:
        deepslim.load(tmp_path / "lm")
    assert "allow_modules" in str(err.value) and "\n" not in str(err.value)


def test_a_class_defined_in_the_users_script(tmp_path):
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(f"""
        import torch
        from torch import nn
        import deepslim

        class Net(nn.Module):
            def __init__(self, width=6):
                super().__init__()
                self.width = width
                self.a = nn.Linear(4, width)
                self.b = nn.Linear(width, 2)
                self.register_buffer("offset", torch.full((2,), 0.25))

            def forward(self, x, y):
                return self.b(torch.relu(self.a(x + y))) + self.offset

        model = Net(width=6).eval()
        deepslim.save(model, r"{tmp_path / 'net'}", allow_modules=("__main__",))
        loaded = deepslim.load(r"{tmp_path / 'net'}", allow_modules=("__main__",))
        x, y = torch.randn(3, 4), torch.randn(3, 4)
        assert type(loaded) is Net and loaded.width == 6
        assert torch.equal(loaded(x, y), model(x, y))
        print("ok")
    """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


class BertClassifier(nn.Module):
    """A tiny Hugging Face BERT (random weights, no download) with a head: its layers take a config object,
    which deepslim.save cannot record, so they come back as the wrapper's constructor builds them."""

    def __init__(self, vocab=60, width=16, heads=2):
        super().__init__()
        from transformers import BertConfig, BertModel

        self.vocab, self.width, self.heads = vocab, width, heads
        self.bert = BertModel(BertConfig(vocab_size=vocab, hidden_size=width, num_attention_heads=heads,
                                         intermediate_size=32, num_hidden_layers=2, max_position_embeddings=32),
                              add_pooling_layer=False)
        self.head = nn.Linear(width, 3)

    def forward(self, input_ids, attention_mask):
        return self.head(self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state[:, 0])


def test_hugging_face_layers_come_back_with_their_changed_attributes(tmp_path):
    pytest.importorskip("transformers")
    torch.manual_seed(0)
    model = BertClassifier().eval()
    attention = model.bert.encoder.layer[1].attention.self
    attention.scaling = 0.5  # a scalar a technique changed after construction (as head pruning changes counts)
    inputs = {"input_ids": torch.randint(0, 60, (2, 6)), "attention_mask": torch.ones(2, 6, dtype=torch.long)}
    allow = ALLOW + ("transformers",)
    deepslim.save(model, tmp_path / "bert", allow_modules=allow)
    loaded = deepslim.load(tmp_path / "bert", allow_modules=allow)
    assert loaded.bert.encoder.layer[1].attention.self.scaling == 0.5
    assert torch.equal(loaded(**inputs), model(**inputs))
