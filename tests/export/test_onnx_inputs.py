"""export_onnx and the ONNX Runtime helpers take a tensor, a tuple or a dict of inputs."""

import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.export import evaluate_onnx, onnx_session
from deepslim.export.onnx import run_onnx, run_onnx_outputs
from deepslim.testing import ImageAndFeatures


class Pooled(nn.Module):
    """Token ids and a mask -> (logits, per-token states)."""

    def __init__(self, vocab=50, width=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        self.head = nn.Linear(width, 4)

    def forward(self, input_ids, attention_mask):
        mask = attention_mask.unsqueeze(-1).float()
        states = self.embed(input_ids) * mask
        return {"logits": self.head(states.sum(1) / mask.sum(1).clamp(min=1)), "states": states}


class SelfAttention(nn.Module):
    """Attention written with the tensors' own shapes, so the exporter keeps the sequence axis free."""

    def __init__(self, vocab=40, width=16, heads=2):
        super().__init__()
        self.heads = heads
        self.embed = nn.Embedding(vocab, width)
        self.qkv = nn.Linear(width, 3 * width)
        self.out = nn.Linear(width, width)

    def forward(self, input_ids, attention_mask):
        x = self.embed(input_ids)
        b, t, w = x.shape
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, w // self.heads).permute(2, 0, 3, 1, 4)
        keep = attention_mask[:, None, None, :].bool()
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.out(y.transpose(1, 2).reshape(b, t, w))


class TinyEncoder(nn.Module):
    def __init__(self, vocab=40, width=16):
        super().__init__()
        self.embed = nn.Embedding(vocab, width)
        layer = nn.TransformerEncoderLayer(width, 2, 32, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(width, 3)

    def forward(self, input_ids):
        return self.head(self.encoder(self.embed(input_ids)).mean(1))


def tokens(n=2, length=7, vocab=40):
    mask = torch.ones(n, length, dtype=torch.long)
    mask[-1, length - 2:] = 0
    return {"input_ids": torch.randint(0, vocab, (n, length)), "attention_mask": mask}


def graph(path):
    session = onnx_session(path)
    return ({i.name: i.shape for i in session.get_inputs()}, {o.name: o.shape for o in session.get_outputs()},
            session)


def close(got, expected, atol=1e-4):
    return all(torch.allclose(torch.from_numpy(g), e, atol=atol) for g, e in zip(got, expected))


def test_positional_inputs_are_named_after_forward_and_the_batch_is_free(tmp_path):
    model = ImageAndFeatures().eval()
    result = deepslim.export_onnx(model, tmp_path / "m.onnx", (torch.randn(1, 3, 8, 8), torch.randn(1, 6)))
    assert result["max_abs_diff"] < 1e-4
    assert (result["input_names"], result["output_names"]) == (["image", "features"], ["output"])
    inputs, outputs, session = graph(tmp_path / "m.onnx")
    assert inputs == {"image": ["batch", 3, 8, 8], "features": ["batch", 6]} and outputs == {"output": ["batch", 3]}
    image, features = torch.randn(5, 3, 8, 8), torch.randn(5, 6)
    assert close([run_onnx(session, (image, features))], [model(image, features).detach()])
    # ONNX nodes and weights keep the model's own names: quantization maps nodes to modules by them
    model_proto = onnx.load(str(tmp_path / "m.onnx"))
    assert {i.name for i in model_proto.graph.initializer} == set(model.state_dict())
    assert {"/conv/Conv", "/extra/Gemm", "/head/Gemm"} <= {n.name for n in model_proto.graph.node}


def test_dict_inputs_are_fed_by_name_and_every_output_is_checked(tmp_path):
    model = Pooled(vocab=40)
    inputs = tokens()
    reordered = {"attention_mask": inputs["attention_mask"], "input_ids": inputs["input_ids"]}
    result = deepslim.export_onnx(model, tmp_path / "m.onnx", reordered)
    assert result["input_names"] == ["attention_mask", "input_ids"]
    assert result["output_names"] == ["output_0", "output_1"] and result["max_abs_diff"] < 1e-5
    _, outputs, session = graph(tmp_path / "m.onnx")
    assert outputs == {"output_0": ["batch", 4], "output_1": ["batch", 7, 16]}
    batch = tokens(n=3)
    expected = list(model(**batch).values())
    assert close(run_onnx_outputs(session, batch), [t.detach() for t in expected])
    assert model.training  # the caller's mode is restored


def test_dynamic_sequence_frees_the_token_axis(tmp_path):
    model = SelfAttention().eval()
    result = deepslim.export_onnx(model, tmp_path / "m.onnx", tokens(n=1, length=6), dynamic_sequence=True)
    inputs, outputs, session = graph(tmp_path / "m.onnx")
    assert inputs == {"input_ids": ["batch", "sequence"], "attention_mask": ["batch", "sequence"]}
    assert outputs == {"output": ["batch", "sequence", 16]} and result["max_abs_diff"] < 1e-5
    longer = tokens(n=3, length=11)
    assert close(run_onnx_outputs(session, longer), [model(**longer).detach()])


def test_explicit_dynamic_axes_and_their_mistakes(tmp_path):
    model = SelfAttention().eval()
    deepslim.export_onnx(model, tmp_path / "m.onnx", tokens(n=1), dynamic_axes={
        "input_ids": {1: "tokens"}, "attention_mask": {1: "tokens"}, "output": {1: "tokens"}})
    inputs, outputs, _ = graph(tmp_path / "m.onnx")
    assert inputs["input_ids"] == ["batch", "tokens"] and outputs["output"] == ["batch", "tokens", 16]
    with pytest.raises(DeepslimError) as err:
        deepslim.export_onnx(model, tmp_path / "bad.onnx", tokens(n=1), dynamic_axes={"ids": {1: "tokens"}})
    assert "'ids'" in err.value.message and "input_ids, attention_mask, output" in err.value.hint
    assert not (tmp_path / "bad.onnx").exists()


def test_transformer_encoder_batch_is_free_but_a_fixed_sequence_is_reported(tmp_path):
    model = TinyEncoder().eval()
    ids = torch.randint(0, 40, (2, 9))
    result = deepslim.export_onnx(model, tmp_path / "enc.onnx", (ids,))
    assert result["input_names"] == ["input_ids"] and result["max_abs_diff"] < 1e-4
    _, _, session = graph(tmp_path / "enc.onnx")
    more = torch.randint(0, 40, (5, 9))
    assert close([run_onnx(session, {"input_ids": more})], [model(more).detach()])
    # the TorchScript exporter bakes nn.MultiheadAttention's sequence length into a Reshape: said, not written
    with pytest.raises(DeepslimError) as err:
        deepslim.export_onnx(model, tmp_path / "seq.onnx", (ids,), dynamic_sequence=True)
    assert "sequence" in err.value.message and "MultiheadAttention" in err.value.hint
    assert not (tmp_path / "seq.onnx").exists()


def test_a_single_tensor_keeps_the_names_deployed_files_use(tmp_path):
    result = deepslim.export_onnx(deepslim.create_model("lenet5"), tmp_path / "m.onnx", torch.randn(1, 1, 28, 28))
    assert (result["input_names"], result["output_names"]) == (["input"], ["logits"])


def test_tiny_bert_with_dynamic_sequence(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                     num_hidden_layers=2, vocab_size=100, max_position_embeddings=32)
    torch.manual_seed(0)
    bert = transformers.BertModel(config).eval()
    result = deepslim.export_onnx(bert, tmp_path / "bert.onnx", tokens(n=2, length=9, vocab=100),
                                  dynamic_sequence=True)
    assert result["input_names"] == ["input_ids", "attention_mask"] and result["max_abs_diff"] < 1e-4
    _, outputs, session = graph(tmp_path / "bert.onnx")
    assert outputs == {"output_0": ["batch", "sequence", 32], "output_1": ["batch", 32]}
    other = tokens(n=3, length=13, vocab=100)
    with torch.no_grad():
        expected = list(bert(**other).values())
    assert close(run_onnx_outputs(session, other), expected)


def _state(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


class ReturnsText(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)

    def forward(self, x, y):
        return self.lin(x + y), "done"


@pytest.mark.parametrize("model, inputs, words", [
    (Pooled(), {"input_ids": torch.zeros(1, 3, dtype=torch.long), "mask": torch.ones(1, 3)},
     ["forward(input_ids, attention_mask)", "'mask'"]),
    (ImageAndFeatures(), (torch.randn(1, 3, 8, 8),), ["forward(image, features)", "features"]),
    (ReturnsText(), (torch.randn(1, 4), torch.randn(1, 4)), ["not tensors"]),
])
def test_bad_inputs_and_outputs_get_one_line_errors_and_leave_model_and_path_untouched(tmp_path, model, inputs, words):
    before = _state(model)
    with pytest.raises(DeepslimError) as err:
        deepslim.export_onnx(model, tmp_path / "m.onnx", inputs)
    text = str(err.value)
    assert all(w in text for w in words) and "\n" not in text and err.value.hint
    assert not (tmp_path / "m.onnx").exists() and not list(tmp_path.iterdir())
    assert model.training and all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_ort_feeds_name_missing_inputs(tmp_path):
    deepslim.export_onnx(Pooled(), tmp_path / "m.onnx", tokens())
    session = onnx_session(tmp_path / "m.onnx")
    with pytest.raises(DeepslimError, match="needs input\\(s\\) attention_mask"):
        run_onnx(session, {"input_ids": torch.zeros(1, 3, dtype=torch.long)})


def test_evaluate_onnx_on_batches_of_dict_inputs(tmp_path):
    model = Pooled().eval()
    deepslim.export_onnx(model, tmp_path / "m.onnx", tokens())
    batches = [(tokens(n=4), torch.randint(0, 4, (4,))) for _ in range(3)]
    with torch.no_grad():
        correct = sum((model(**x)["logits"].argmax(1) == y).sum().item() for x, y in batches)
    result = evaluate_onnx(tmp_path / "m.onnx", batches)
    assert result["n"] == 12 and result["accuracy"] == pytest.approx(100.0 * correct / 12)
