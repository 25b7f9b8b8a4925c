"""Quantization of any model: several inputs, dict inputs, token ids; calibration from any batches.

Agreement with PyTorch is the relative error ||onnx - torch|| / ||torch|| over a batch the
calibration did not see (every output, every sample):
- static int8 (QDQ): under 8%. Every activation is rounded to 1/255 of a range calibrated on
  other batches (held-out values beyond it are clipped) and every weight to 1/254 of its
  channel's range. The two-input and dict models measure 1-1.5%, the transformer, whose
  attention scores and softmax are quantized too, 2.5%. A wrongly wired graph (an input fed to
  the wrong name, a dropped mask, a range from the wrong tensor) is off by tens of percent.
- dynamic int8: under 3%. Activations are quantized per batch from their own min/max, so there
  is no clipping; measured about 1%.
- the fake-quantized PyTorch model (``quantize_``): under 8%, as static int8 (measured 0.6-1.1%;
  in the transformer only the head is wrapped, see ``quantize_``)."""

import numpy as np
import onnx
import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.core.inputs import Batch, call_model, output_tensors
from deepslim.quantize import PTQConfig, QuantLayer, executed_integer_ops, export_int8, export_int8_dynamic, quantize_
from deepslim.testing import tiny_data

STATIC, DYNAMIC = 0.08, 0.03


class TwoInputs(nn.Module):
    """Two positional inputs (e.g. an image embedding and metadata), fused by a head."""

    def __init__(self):
        super().__init__()
        self.a = nn.Sequential(nn.Linear(48, 128), nn.ReLU())
        self.b = nn.Sequential(nn.Linear(16, 128), nn.ReLU())
        self.head = nn.Linear(256, 10)

    def forward(self, a, b):
        return self.head(torch.cat([self.a(a), self.b(b)], dim=1))


class DictInputs(nn.Module):
    """Called as ``model(**{"input_ids": ..., "attention_mask": ...})``: a masked mean embedding."""

    def __init__(self, vocab: int = 40, dim: int = 64):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 256), nn.ReLU(), nn.Linear(256, dim))

    def forward(self, input_ids, attention_mask):
        h = self.mlp(self.embed(input_ids))
        mask = attention_mask.unsqueeze(-1).to(h.dtype)
        return (h * mask).sum(1) / mask.sum(1).clamp(min=1)


class TinyTransformer(nn.Module):
    """Token ids (and an optional padding mask) -> nn.TransformerEncoder -> first token -> class logits."""

    def __init__(self, vocab: int = 40, dim: int = 128, classes: int = 5):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        layer = nn.TransformerEncoderLayer(dim, nhead=4, dim_feedforward=256, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, num_layers=2, enable_nested_tensor=False)
        for copy in self.encoder.layers:  # the clones start equal; trained layers never are
            copy.self_attn._reset_parameters()
            copy.self_attn.out_proj.reset_parameters()
            copy.linear1.reset_parameters()
            copy.linear2.reset_parameters()
        self.head = nn.Linear(dim, classes)

    def forward(self, input_ids, attention_mask=None):
        padding = None if attention_mask is None else attention_mask == 0
        return self.head(self.encoder(self.embed(input_ids), src_key_padding_mask=padding)[:, 0])


def _ids(g, n, length=12, vocab=40):
    return torch.randint(0, vocab, (n, length), generator=g)


def _mask(g, n, length=12):
    lengths = torch.randint(3, length + 1, (n,), generator=g)
    return (torch.arange(length)[None] < lengths[:, None]).long()


def two_inputs_case(g):
    batches = [Batch((torch.randn(16, 48, generator=g), torch.randn(16, 16, generator=g)), torch.zeros(16))
               for _ in range(4)]
    return TwoInputs(), batches


def dict_case(g):
    batches = [({"input_ids": _ids(g, 16), "attention_mask": _mask(g, 16)}, None) for _ in range(4)]
    return DictInputs(), batches


def transformer_case(g):
    return TinyTransformer(), [(_ids(g, 16), torch.zeros(16, dtype=torch.long)) for _ in range(4)]


CASES = {"two-inputs": two_inputs_case, "dict": dict_case, "transformer": transformer_case}


@pytest.fixture(params=list(CASES))
def case(request):
    torch.manual_seed(0)
    model, batches = CASES[request.param](torch.Generator().manual_seed(1))
    return request.param, model.eval(), batches


def _torch_outputs(model, inputs) -> list[np.ndarray]:
    with torch.no_grad():
        return [t.numpy() for t in output_tensors(call_model(model, inputs))]


def _feeds(inputs) -> dict[str, np.ndarray]:
    """ONNX feeds by the names export_onnx gives: dict keys, else forward's parameter names, else 'input'."""
    if isinstance(inputs, dict):
        return {k: v.numpy() for k, v in inputs.items()}
    if isinstance(inputs, torch.Tensor):
        return {"input": inputs.numpy()}
    return {"a": inputs[0].numpy(), "b": inputs[1].numpy()}


def _relative_error(got: list[np.ndarray], expected: list[np.ndarray]) -> float:
    assert [g.shape for g in got] == [e.shape for e in expected]
    diff = np.sqrt(sum(float(np.sum((g - e) ** 2)) for g, e in zip(got, expected)))
    return diff / np.sqrt(sum(float(np.sum(e ** 2)) for e in expected))


def _onnx_error(path, model, inputs) -> float:
    session = deepslim.onnx_session(path)
    names = {i.name for i in session.get_inputs()}
    got = session.run(None, {k: v for k, v in _feeds(inputs).items() if k in names})
    return _relative_error(got, _torch_outputs(model, inputs))


def _held_out(batches):
    """The inputs of the last batch, which the tests keep out of calibration."""
    return batches[-1].inputs if isinstance(batches[-1], Batch) else batches[-1][0]


def test_static_int8_from_batches_of_any_form(case, tmp_path):
    name, model, batches = case
    info = export_int8(model, batches[:3], tmp_path / "int8.onnx", PTQConfig(calibration_size=48))
    assert info["quantized_nodes"], info
    ops = {n.op_type for n in onnx.load(tmp_path / "int8.onnx").graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    executed = executed_integer_ops(tmp_path / "int8.onnx")
    assert any(op in executed for op in ("QLinearMatMul", "QGemm", "MatMulIntegerToFloat")), executed
    assert _onnx_error(tmp_path / "int8.onnx", model, _held_out(batches)) < STATIC
    deepslim.export_onnx(model, tmp_path / "fp32.onnx", _held_out(batches))
    assert (tmp_path / "int8.onnx").stat().st_size < 0.5 * (tmp_path / "fp32.onnx").stat().st_size


def test_dynamic_int8_takes_any_input_form(case, tmp_path):
    name, model, batches = case
    inputs = _held_out(batches)
    info = export_int8_dynamic(model, inputs, tmp_path / "dyn.onnx")
    ops = {n.op_type for n in onnx.load(tmp_path / "dyn.onnx").graph.node}
    assert {"MatMulInteger", "DynamicQuantizeLinear"} & ops, ops
    assert _onnx_error(tmp_path / "dyn.onnx", model, inputs) < DYNAMIC
    assert info["max_abs_diff"] < DYNAMIC * info["max_abs_output"]
    deepslim.export_onnx(model, tmp_path / "fp32.onnx", inputs)
    assert (tmp_path / "dyn.onnx").stat().st_size < 0.6 * (tmp_path / "fp32.onnx").stat().st_size


def test_fake_quant_pytorch_model_from_batches(case):
    name, model, batches = case
    before = {k: v.clone() for k, v in model.state_dict().items()}
    q = quantize_(model, PTQConfig(calibration_size=48, bias_correction=True), batches[:3])
    wrapped = [n for n, m in q.named_modules() if isinstance(m, QuantLayer)]
    assert wrapped
    if name == "transformer":  # PyTorch's attention and fused encoder layer read these weights directly
        assert wrapped == ["head"]
    inputs = _held_out(batches)
    assert _relative_error(_torch_outputs(q, inputs), _torch_outputs(model, inputs)) < STATIC
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_dynamic_sequence_axis(tmp_path, caplog):
    torch.manual_seed(0)
    model, batches = dict_case(torch.Generator().manual_seed(1))
    model.eval()
    g = torch.Generator().manual_seed(2)
    batches.append(({"input_ids": _ids(g, 8, length=7), "attention_mask": _mask(g, 8, length=7)}, None))
    with pytest.raises(DeepslimError, match="dynamic_sequence=True"):  # lengths vary, the export is fixed
        export_int8(model, batches, tmp_path / "fixed.onnx")
    export_int8(model, batches, tmp_path / "int8.onnx", dynamic_sequence=True)
    export_int8_dynamic(model, batches[0][0], tmp_path / "dyn.onnx", dynamic_sequence=True)
    longer = {"input_ids": _ids(g, 5, length=20), "attention_mask": _mask(g, 5, length=20)}
    assert _onnx_error(tmp_path / "int8.onnx", model, longer) < STATIC
    assert _onnx_error(tmp_path / "dyn.onnx", model, longer) < DYNAMIC
    assert not (tmp_path / "fixed.onnx").exists()
    info = export_int8_dynamic(model, batches[0][0], tmp_path / "dyn-emb.onnx", dynamic_sequence=True,
                               quantize_embeddings=True)
    assert not any("pre-processing" in r.getMessage() for r in caplog.records)  # ORT's advice, not for this user
    assert info["embeddings"] == "8-bit" and _onnx_error(tmp_path / "dyn-emb.onnx", model, longer) < DYNAMIC
    eight_bit = (onnx.TensorProto.INT8, onnx.TensorProto.UINT8)  # ORT stores Gather tables as uint8
    tables = [t for t in onnx.load(tmp_path / "dyn-emb.onnx").graph.initializer if t.data_type in eight_bit]
    assert any(list(t.dims) == [model.embed.num_embeddings, model.embed.embedding_dim] for t in tables)
    assert (tmp_path / "dyn-emb.onnx").stat().st_size < (tmp_path / "dyn.onnx").stat().st_size


def test_attention_masks_stay_float_and_keep_masking(tmp_path):
    """A padding mask becomes -inf scores in the graph: those tensors get no 8-bit range, so padded
    tokens stay ignored by the int8 model."""
    torch.manual_seed(0)
    model, g = TinyTransformer().eval(), torch.Generator().manual_seed(1)
    batches = [{"input_ids": _ids(g, 16), "attention_mask": _mask(g, 16)} for _ in range(4)]
    info = export_int8(model, batches[:3], tmp_path / "int8.onnx")
    assert info["float_tensors"] and info["quantized_nodes"]
    held_out = batches[3]
    assert _onnx_error(tmp_path / "int8.onnx", model, held_out) < STATIC
    scrambled = dict(held_out, input_ids=torch.where(held_out["attention_mask"] == 1, held_out["input_ids"], 7))
    session = deepslim.onnx_session(tmp_path / "int8.onnx")
    assert np.array_equal(session.run(None, _feeds(held_out))[0], session.run(None, _feeds(scrambled))[0])


def test_images_as_any_iterable_give_the_same_file(tmp_path):
    """The image path is unchanged: images, a TensorData and (images, labels) batches of 64 give one file."""
    data = tiny_data(n_train=100)
    torch.manual_seed(0)
    model = deepslim.create_model("lenet5").eval()
    config = PTQConfig(calibration_size=100)
    export_int8(model, data.train.images, tmp_path / "a.onnx", config)
    export_int8(model, data.train, tmp_path / "b.onnx", config)
    loader = [(data.train.images[s:s + 64], data.train.labels[s:s + 64]) for s in range(0, 100, 64)]
    export_int8(model, iter(loader), tmp_path / "c.onnx", config)
    a = (tmp_path / "a.onnx").read_bytes()
    assert a == (tmp_path / "b.onnx").read_bytes() == (tmp_path / "c.onnx").read_bytes()


def test_bad_calibration_is_one_clear_line_and_nothing_changes(tmp_path):
    torch.manual_seed(0)
    model, batches = dict_case(torch.Generator().manual_seed(1))
    model.eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    mixed = [batches[0], (batches[1][0]["input_ids"], None)]
    wrong_key = [({"ids": batches[0][0]["input_ids"], "attention_mask": batches[0][0]["attention_mask"]}, None)]
    missing = [({"input_ids": batches[0][0]["input_ids"]}, None)]
    cases = [(mixed, "different structure"), (wrong_key, r"takes no argument named 'ids'"),
             (missing, r"forward\(input_ids, attention_mask\)"), ([], "empty"), (42, "must be images or batches")]
    for i, (calibration, message) in enumerate(cases):
        for verb in (lambda p: export_int8(model, calibration, p),
                     lambda p: quantize_(model, PTQConfig(), calibration)):
            with pytest.raises(DeepslimError, match=message) as error:
                verb(tmp_path / f"{i}.onnx")
            assert "\n" not in str(error.value) and error.value.hint
    with pytest.raises(DeepslimError, match="takes no argument named 'ids'"):
        export_int8_dynamic(model, wrong_key[0][0], tmp_path / "dyn.onnx")

    class Labelled(nn.Module):  # returns a string beside the tensor: nothing ONNX can carry
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return self.inner(input_ids, attention_mask), "embedding"

    for verb in (lambda: export_int8(Labelled(model), batches, tmp_path / "s.onnx"),
                 lambda: export_int8_dynamic(Labelled(model), batches[0][0], tmp_path / "d.onnx")):
        with pytest.raises(DeepslimError) as error:
            verb()
        assert "not tensors" in str(error.value) and "supported outputs" in error.value.hint
    assert not list(tmp_path.iterdir())
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
