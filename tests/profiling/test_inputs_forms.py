"""profile / count_ops / peak_activation_bytes / latency take a tensor, a tuple or a dict of inputs."""

import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.profiling import count_ops, measure_latency, peak_activation_bytes
from deepslim.profiling.latency import compare_latency
from deepslim.testing import ImageAndFeatures


class Pooled(nn.Module):
    """Keyword inputs like a tokenizer's: token ids and an attention mask."""

    def __init__(self, vocab=50, width=16, classes=4):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, classes)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        return self.head((self.embed(input_ids) * mask).sum(1) / mask.sum(1).clamp(min=1))


class TinyEncoder(nn.Module):
    """A small nn.TransformerEncoder over int64 ids."""

    def __init__(self, vocab=40, width=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(width, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, 3)

    def forward(self, input_ids):
        return self.head(self.encoder(self.embed(input_ids)).mean(1))


def two_inputs(n=2):
    return torch.randn(n, 3, 8, 8), torch.randn(n, 6)


def token_inputs(n=2, length=7, vocab=50):
    mask = torch.ones(n, length, dtype=torch.long)
    mask[-1, length - 2:] = 0
    return {"input_ids": torch.randint(0, vocab, (n, length)), "attention_mask": mask}


def test_two_input_macs_equal_the_analytic_count():
    n = 2
    # conv: 5 outputs x 6x6 positions x 3x3x3 weights; extra: 6x5; head: 5x3 (per sample)
    expected = n * (5 * 6 * 6 * 3 * 3 * 3 + 6 * 5 + 5 * 3)
    p = deepslim.profile(ImageAndFeatures(), two_inputs(n))
    assert p.macs == expected and p.flops == 2 * expected
    assert p.input_shape == [[n, 3, 8, 8], [n, 6]] and p.output_shape == [n, 3]
    assert "(2, 3, 8, 8), (2, 6)" in p.table()


def test_dict_inputs_profile_count_and_memory():
    model, inputs = Pooled(), token_inputs()
    p = deepslim.profile(model, inputs)
    assert p.macs == 2 * 16 * 4  # the head; an embedding lookup multiplies nothing
    assert p.input_shape == {"input_ids": [2, 7], "attention_mask": [2, 7]} and p.output_shape == [2, 4]
    assert count_ops(model, inputs).macs == p.macs
    input_bytes = sum(t.numel() * t.element_size() for t in inputs.values())
    assert peak_activation_bytes(model, inputs) > input_bytes + 2 * 7 * 16 * 4 - 1  # the embedded tokens live
    assert "input_ids=(2, 7), attention_mask=(2, 7)" in p.table()


def test_transformer_encoder_with_int64_ids():
    model = TinyEncoder().eval()
    ids = torch.randint(0, 40, (2, 9))
    p = deepslim.profile(model, ids)
    attention_in_proj = 2 * 2 * 9 * 16 * 48  # two layers, (batch 2 x 9 tokens) x 16 -> 3 x 16
    assert p.macs > attention_in_proj and p.output_shape == [2, 3]
    assert count_ops(model, (ids,)).macs == count_ops(model, {"input_ids": ids}).macs == p.macs


def test_a_single_tensor_profiles_as_before():
    p = deepslim.profile(deepslim.create_model("lenet5"), torch.randn(1, 1, 28, 28))
    assert (p.macs, p.input_shape, p.output_shape) == (416520, [1, 1, 28, 28], [1, 10])


def _unchanged(model, before, training):
    after = model.state_dict()
    return model.training == training and all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("inputs, words", [
    ({"input_ids": torch.zeros(1, 3, dtype=torch.long), "attention_mask": torch.ones(1, 3),
      "token_type_ids": torch.zeros(1, 3, dtype=torch.long)}, ["token_type_ids", "forward(input_ids, attention_mask)"]),
    ((torch.zeros(1, 3, dtype=torch.long),), ["forward(input_ids, attention_mask)", "attention_mask"]),
])
def test_inputs_that_do_not_match_forward_name_its_parameters(inputs, words):
    model = Pooled().train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(DeepslimError) as err:
        deepslim.profile(model, inputs)
    assert all(w in str(err.value) for w in words) and "\n" not in str(err.value) and err.value.hint
    assert _unchanged(model, before, training=True)


class ReturnsText(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        return {"logits": self.lin(x), "label": "cat"}


def test_outputs_that_are_not_tensors_are_refused_with_the_supported_types():
    model = ReturnsText()
    with pytest.raises(DeepslimError) as err:
        deepslim.profile(model, torch.randn(1, 4))
    assert "not tensors" in err.value.message and "tuple/list of tensors" in err.value.hint
    assert model.training  # mode restored


@pytest.mark.parametrize("make", [lambda: (ImageAndFeatures(), two_inputs(1)), lambda: (Pooled(), token_inputs(1))])
def test_latency_on_both_runtimes_for_tuple_and_dict_inputs(make):
    model, inputs = make()
    rows = measure_latency(model, inputs, batch_sizes=(1, 4), min_seconds=0.0, warmup=1, min_repeats=2, threads=1)
    assert sorted((r.runtime, r.batch_size) for r in rows) == [("onnxruntime", 1), ("onnxruntime", 4),
                                                                ("torch", 1), ("torch", 4)]
    assert all(r.repeats >= 2 and r.median_ms > 0 for r in rows)


class IgnoresSecond(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x, unused):
        return self.lin(x)


def test_onnx_latency_feeds_by_name_when_the_exporter_drops_an_unused_input():
    rows = measure_latency(IgnoresSecond(), (torch.randn(1, 4), torch.randn(1, 4)), batch_sizes=(2,),
                           runtimes=("onnxruntime",), min_seconds=0.0, warmup=1, min_repeats=2, threads=1)
    assert rows[0].batch_size == 2


def test_compare_latency_takes_dict_inputs():
    inputs = token_inputs(1)
    rows = compare_latency(Pooled(), Pooled(width=8), inputs, batch_sizes=(1, 64), min_seconds=0.0, warmup=1,
                           calls_per_round=1, settle_ms=0.0, threads=1)
    assert sorted((r.runtime, r.batch_size) for r in rows) == [("onnxruntime", 1), ("onnxruntime", 64),
                                                                ("torch", 1), ("torch", 64)]
    assert all(r.rounds >= 5 and r.speedup > 0 for r in rows)


def test_latency_refuses_inputs_forward_does_not_take():
    with pytest.raises(DeepslimError, match="forward\\(input_ids, attention_mask\\)"):
        measure_latency(Pooled(), {"ids": torch.zeros(1, 3, dtype=torch.long)}, runtimes=("torch",))


def test_check_input_shape_takes_any_inputs():
    from deepslim.train import check_input_shape

    model, inputs = Pooled(), token_inputs()
    check_input_shape(model, inputs, expected_classes=4)
    with pytest.raises(DeepslimError, match="predicts 4 classes but the data set has 3"):
        check_input_shape(model, inputs, expected_classes=3)
    with pytest.raises(DeepslimError, match="forward\\(input_ids, attention_mask\\)"):
        check_input_shape(model, {"input_ids": inputs["input_ids"]})
    encoder = TinyEncoder().encoder  # returns per-token states: not logits, fine for an embedder
    states = {"src": torch.randn(2, 5, 16)}
    check_input_shape(encoder, states, logits=False)
    with pytest.raises(DeepslimError, match="expected logits"):
        check_input_shape(encoder, states)
    with pytest.raises(DeepslimError, match="shape src \\(2, 5, 8\\)"):
        check_input_shape(encoder, {"src": torch.randn(2, 5, 8)}, logits=False)


class PaddedEncoder(nn.Module):
    """nn.TransformerEncoder with a padding mask: in eval mode its fast path packs nested tensors."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(50, 32)
        self.enc = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64, batch_first=True), 2)
        self.head = nn.Linear(32, 5)

    def forward(self, input_ids, attention_mask):
        return self.head(self.enc(self.emb(input_ids), src_key_padding_mask=attention_mask == 0).mean(1))


def test_a_padded_transformer_encoder_is_counted_on_its_math_path():
    torch.manual_seed(0)
    model = PaddedEncoder().eval()
    ids = torch.randint(0, 50, (2, 7))
    padded = torch.ones(2, 7, dtype=torch.long)
    padded[1, 5:] = 0
    full = count_ops(model, {"input_ids": ids, "attention_mask": torch.ones(2, 7, dtype=torch.long)}).macs
    # The same multiply-adds whether or not some positions are padding; the fast path is back on after.
    assert count_ops(model, {"input_ids": ids, "attention_mask": padded}).macs == full > 0
    assert peak_activation_bytes(model, {"input_ids": ids, "attention_mask": padded}) > 0
    assert torch.backends.mha.get_fastpath_enabled()
