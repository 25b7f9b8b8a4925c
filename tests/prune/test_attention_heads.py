"""Head and FFN pruning remove whole heads / neurons of real transformer layers: counts updated,
outputs those of the unpruned model with the same heads silenced, MACs lower, ONNX export exact."""

import copy

import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.core.inputs import call_model
from deepslim.prune import ChannelPruning, FFNPruning, HeadPruning, SplitMultiheadAttention, prune_


class TinyBert(nn.Module):
    """A 2-layer BERT with random weights (no download), mean-pooled into an embedding. Tests building
    it are skipped where ``transformers`` (in the test extra) is missing; the others still run."""

    def __init__(self):
        super().__init__()
        transformers = pytest.importorskip("transformers")
        config = transformers.BertConfig(hidden_size=32, num_attention_heads=4, intermediate_size=64,
                                         num_hidden_layers=2, vocab_size=100, max_position_embeddings=64)
        self.bert = transformers.BertModel(config, add_pooling_layer=False)

    def forward(self, input_ids, attention_mask):
        hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).float()
        return (hidden * mask).sum(1) / mask.sum(1)


class Encoder(nn.Module):
    """Token classifier on nn.TransformerEncoder, called with (tokens, padding_mask)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 32)
        layer = nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = nn.Linear(32, 5)

    def forward(self, tokens, padding_mask):
        return self.head(self.encoder(self.embed(tokens), src_key_padding_mask=padding_mask).mean(1))


def bert_inputs(n=2, length=8):
    g = torch.Generator().manual_seed(1)
    mask = torch.ones(n, length, dtype=torch.long)
    mask[0, -3:] = 0
    return {"input_ids": torch.randint(1, 100, (n, length), generator=g), "attention_mask": mask}


def encoder_inputs(n=2, length=8):
    g = torch.Generator().manual_seed(1)
    padding = torch.zeros(n, length, dtype=torch.bool)
    padding[0, -3:] = True
    return torch.randint(0, 100, (n, length), generator=g), padding


def build(cls):
    torch.manual_seed(0)
    return cls().eval()


def kept_heads(original: torch.Tensor, pruned: torch.Tensor, head_dim: int) -> list[int]:
    """Which heads of ``original`` (rows of a q projection) survive in ``pruned``."""
    heads = original.shape[0] // head_dim
    return [h for h in range(heads)
            if any(torch.equal(original[h * head_dim:(h + 1) * head_dim], pruned[i:i + head_dim])
                   for i in range(0, pruned.shape[0], head_dim))]


def silence_bert_heads(model: TinyBert, pruned: TinyBert) -> TinyBert:
    """``model`` with the value rows of the heads ``pruned`` removed set to zero: their output is then zero."""
    silenced = copy.deepcopy(model)
    for layer, after in zip(silenced.bert.encoder.layer, pruned.bert.encoder.layer):
        attn, d = layer.attention.self, layer.attention.self.attention_head_size
        keep = kept_heads(attn.query.weight, after.attention.self.query.weight, d)
        with torch.no_grad():
            for h in set(range(attn.num_attention_heads)) - set(keep):
                attn.value.weight[h * d:(h + 1) * d] = 0
                attn.value.bias[h * d:(h + 1) * d] = 0
    return silenced


def test_split_attention_matches_multihead_attention():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 4, kdim=12, vdim=20).eval()  # sequence-first, separate k/v widths
    split = SplitMultiheadAttention.from_multihead_attention(mha)
    q, k, v = torch.randn(5, 3, 16), torch.randn(7, 3, 12), torch.randn(7, 3, 20)
    padding = torch.zeros(3, 7, dtype=torch.bool)
    padding[0, -2:] = True
    for kwargs in ({}, {"key_padding_mask": padding, "attn_mask": torch.randn(5, 7) > 1},
                   {"need_weights": False, "key_padding_mask": padding}, {"average_attn_weights": False}):
        (a, wa), (b, wb) = mha(q, k, v, **kwargs), split(q, k, v, **kwargs)
        assert torch.allclose(a, b, atol=1e-5)
        assert (wa is None and wb is None) or torch.allclose(wa, wb, atol=1e-5)


def test_head_pruning_bert_removes_whole_heads(tmp_path):
    model, x = build(TinyBert), bert_inputs()
    original = copy.deepcopy(model)
    plan = prune_(model, HeadPruning(ratio=0.5), example_inputs=x)
    assert plan.structured and plan.macs_after < plan.macs_before
    assert plan.heads == {f"bert.encoder.layer.{i}.attention.self": {"before": 4, "after": 2} for i in range(2)}
    for layer in model.bert.encoder.layer:
        attn = layer.attention.self
        assert attn.num_attention_heads == 2 and attn.attention_head_size == 8
        assert attn.all_head_size == attn.query.out_features == attn.key.out_features == attn.value.out_features == 16
        assert layer.attention.output.dense.in_features == 16 and layer.attention.output.dense.out_features == 32
    out = model(**x)
    assert out.shape == (2, 32)
    # the pruned model computes exactly what the original computes with those heads silenced
    assert torch.allclose(out, silence_bert_heads(original, model)(**x), atol=1e-5)
    assert deepslim.export_onnx(model, tmp_path / "bert.onnx", x, dynamic_sequence=True)["max_abs_diff"] < 1e-4


def test_head_pruning_multihead_attention_is_split_and_pruned(tmp_path):
    model, x = build(Encoder), encoder_inputs()
    original = copy.deepcopy(model)
    plan = prune_(model, HeadPruning(ratio=0.5, importance="l1"), example_inputs=x)
    assert plan.heads["encoder.layers.0.self_attn"] == {"before": 4, "after": 2}
    assert plan.macs_after < plan.macs_before
    silenced = copy.deepcopy(original)
    for layer, after, before in zip(model.encoder.layers, silenced.encoder.layers, original.encoder.layers):
        attn = layer.self_attn
        assert isinstance(attn, SplitMultiheadAttention)
        assert attn.num_heads == 2 and attn.head_dim == 8 and attn.q_proj.out_features == 16
        assert attn.embed_dim == attn.out_proj.out_features == 32
        keep = kept_heads(before.self_attn.in_proj_weight[:32], attn.q_proj.weight, 8)
        with torch.no_grad():
            for h in set(range(4)) - set(keep):  # the v rows of the packed projection come third
                after.self_attn.in_proj_weight[64 + 8 * h:64 + 8 * (h + 1)] = 0
                after.self_attn.in_proj_bias[64 + 8 * h:64 + 8 * (h + 1)] = 0
    out = model(*x)
    assert out.shape == (2, 5)
    assert torch.allclose(out, silenced(*x), atol=1e-5)
    assert deepslim.export_onnx(model, tmp_path / "enc.onnx", x, dynamic_sequence=True)["max_abs_diff"] < 1e-4


def test_global_head_ranking_keeps_a_head_per_layer_and_half_in_total():
    model = build(TinyBert)
    plan = prune_(model, HeadPruning(ratio=0.5, scope="global"), example_inputs=bert_inputs())
    after = [h["after"] for h in plan.heads.values()]
    assert sum(after) == 4 and min(after) >= 1


def test_taylor_head_importance_takes_any_loss():
    model, x = build(TinyBert), bert_inputs()
    target = torch.randn(2, 32)
    plan = prune_(model, HeadPruning(ratio=0.25, importance="taylor"), example_inputs=x, data=(x, target),
                  loss_fn=lambda out, t: nn.functional.mse_loss(out, t))
    assert all(h["after"] == 3 for h in plan.heads.values())
    assert all(p.grad is None for p in model.parameters())  # gradients used for ranking are cleared


def test_ffn_pruning_halves_intermediate_layers():
    for cls, x, ups in ((TinyBert, bert_inputs(), [f"bert.encoder.layer.{i}.intermediate.dense" for i in range(2)]),
                        (Encoder, encoder_inputs(), [f"encoder.layers.{i}.linear1" for i in range(2)])):
        model = build(cls)
        plan = prune_(model, FFNPruning(ratio=0.5), example_inputs=x)
        assert sorted(plan.ffn_blocks) == ups
        assert plan.macs_after < plan.macs_before
        for up, down in plan.ffn_blocks.items():
            assert model.get_submodule(up).out_features == 32 == model.get_submodule(down).in_features
        assert call_model(model, x).shape == (2, 32 if cls is TinyBert else 5)


def test_global_ffn_ranking_removes_half_of_all_neurons():
    model = build(TinyBert)
    plan = prune_(model, FFNPruning(ratio=0.5, scope="global"), example_inputs=bert_inputs())
    widths = [model.get_submodule(up).out_features for up in plan.ffn_blocks]
    assert sum(widths) == 64 and min(widths) >= 1


def test_channel_pruning_bert_keeps_head_attributes_in_step():
    model, x = build(TinyBert), bert_inputs()
    plan = prune_(model, ChannelPruning(ratio=0.25), example_inputs=x)
    assert plan.macs_after < plan.macs_before
    for layer in model.bert.encoder.layer:
        attn = layer.attention.self
        assert attn.num_attention_heads == 4
        assert attn.attention_head_size * 4 == attn.all_head_size == attn.query.out_features
    assert model(**x).shape[0] == 2


def test_head_pruning_refuses_models_without_attention_and_leaves_them_untouched():
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    state = copy.deepcopy(model.state_dict())
    with pytest.raises(DeepslimError, match="no attention module") as err:
        prune_(model, HeadPruning(ratio=0.5), example_inputs=torch.randn(2, 8))
    assert err.value.hint and "\n" not in str(err.value)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())


def test_taylor_without_a_target_asks_for_a_loss_and_undoes_the_split():
    model, x = build(Encoder), encoder_inputs()
    with pytest.raises(DeepslimError, match="needs a loss"):
        prune_(model, HeadPruning(ratio=0.5, importance="taylor"), example_inputs=x, data=(x, None))
    assert isinstance(model.encoder.layers[0].self_attn, nn.MultiheadAttention)  # left as it was


def test_layers_mapped_to_none_keep_their_heads_and_neurons():
    model, x = build(TinyBert), bert_inputs()
    skip = {"bert.encoder.layer.0": None}
    heads = prune_(model, HeadPruning(ratio=0.5), example_inputs=x, layers=skip).heads
    assert heads["bert.encoder.layer.0.attention.self"]["after"] == 4
    assert heads["bert.encoder.layer.1.attention.self"]["after"] == 2
    blocks = prune_(model, FFNPruning(ratio=0.5), example_inputs=x, layers=skip).ffn_blocks
    assert list(blocks) == ["bert.encoder.layer.1.intermediate.dense"]
    assert model.bert.encoder.layer[0].intermediate.dense.out_features == 64


class AttentionPool(nn.Module):
    """Embeddings, one nn.MultiheadAttention, mean pooling, a classifier."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.attn = nn.MultiheadAttention(16, 4, batch_first=True)
        self.head = nn.Linear(16, 3)

    def forward(self, ids):
        h = self.embed(ids)
        return self.head(self.attn(h, h, h)[0].mean(1))


def test_head_pruned_multihead_attention_saves_and_reloads(tmp_path):
    model, ids = build(AttentionPool), torch.randint(0, 50, (2, 6))
    prune_(model, HeadPruning(ratio=0.5), example_inputs=ids)
    allow = (type(model).__module__,)
    deepslim.save(model, tmp_path / "pruned", allow_modules=allow)
    loaded = deepslim.load(tmp_path / "pruned", allow_modules=allow)
    assert isinstance(loaded.attn, SplitMultiheadAttention) and loaded.attn.num_heads == 2
    assert torch.equal(loaded(ids), model(ids))
