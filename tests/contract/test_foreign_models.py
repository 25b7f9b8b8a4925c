"""Contract: every verb on every foreign model (models a user brings, not the zoo's), output checked.

The suite is a VERB TABLE crossed with ``deepslim.testing_models.model_cases()``. A new verb joins by
adding one ``Verb`` row; a new pruning config joins by being defined in ``deepslim/prune/config.py``
(rows are made from every config there). A verb that cannot apply to a model must refuse it with a
clear error, and its cell then skips with the reason the model case gives, never passes silently.
The bad-input tests run every row on inputs that do not match ``forward``, a dict key ``forward``
does not take, batches of mixed structure and a model returning a non-tensor: each must give a
one-line ``DeepslimError`` with a hint and leave the model untouched.
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import onnx
import pytest
import torch
from torch import nn

import deepslim
import deepslim.prune.config as prune_configs
from deepslim.core import Config, DeepslimError
from deepslim.core.inputs import call_model, model_device, output_tensors, split_batch
from deepslim.export.onnx import onnx_session, run_onnx_outputs
from deepslim.testing_models import ModelCase, model_cases
from deepslim.train.batches import move_target


def _declared_here(case: ModelCase) -> ModelCase:
    """The case with its class re-declared in this module. deepslim trusts its own package when it loads
    a model, while a user's class lives in their script or package: declared here, outside deepslim,
    the models take the user's path through save/load (``allow_modules`` and all)."""
    cls = type(case.build.__name__, (case.build,), {"__module__": __name__, "__doc__": case.build.__doc__})
    globals()[cls.__name__] = cls  # where deepslim.load looks it up
    return dataclasses.replace(case, build=cls, allow_modules=(*case.allow_modules, __name__))


CASES = {name: _declared_here(case) for name, case in model_cases().items()}

# int8 tolerance: on models this small (random weights, a few hundred units) uint8 activations and
# int8 weights move outputs by a few percent of their range; 10% catches a wrong scale or layout.
INT8_RTOL = 0.1


# -- helpers ------------------------------------------------------------------------------------------
def _outputs(model: nn.Module, inputs) -> list[torch.Tensor]:
    with torch.inference_mode():
        return [t.cpu().clone() for t in output_tensors(call_model(model.eval(), inputs))]  # on CPU, as the data


def _state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same_state(before: dict, model: nn.Module) -> None:
    after = model.state_dict()
    assert list(after) == list(before), "the model's layers changed"
    # values, wherever they live: a verb may have moved the model to the suite's device
    changed = [k for k, v in before.items() if v.shape != after[k].shape or not torch.equal(v.cpu(), after[k].cpu())]
    assert not changed, f"the model was modified: {changed[:5]}"


def _assert_ties(case: ModelCase, model: nn.Module) -> None:
    for a, b in case.ties:
        assert model.get_parameter(a) is model.get_parameter(b), f"the tie {a} = {b} was broken"


def _unique_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())  # parameters() yields a shared Parameter once


def _macs(model: nn.Module, inputs) -> int:
    return deepslim.profile(model, inputs).macs


def _shorter(inputs, length: int):
    """The inputs with their sequence axis (dim 1 of integer tensors of rank >= 2) cut to ``length``."""
    def cut(t):
        return t[:, :length] if isinstance(t, torch.Tensor) and t.ndim >= 2 and not t.is_floating_point() else t

    if isinstance(inputs, dict):
        return {k: cut(v) for k, v in inputs.items()}
    if isinstance(inputs, tuple):
        return tuple(cut(v) for v in inputs)
    return cut(inputs)


def _ort_outputs(path: Path, inputs) -> list[torch.Tensor]:
    """Every output of an ONNX file run by ONNX Runtime on ``inputs`` (fed by name, any input form)."""
    return [torch.from_numpy(o) for o in run_onnx_outputs(onnx_session(path, threads=1), inputs)]


def _assert_close(got: list, want: list, *, atol: float = 1e-4, rtol_of_range: float = 0.0) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape
        limit = atol + rtol_of_range * float(w.abs().max())
        assert float((g.float() - w.float()).abs().max()) <= limit


def _expect_refusal(verb: "Verb", case: ModelCase, model: nn.Module, tmp_path: Path, *words: str) -> None:
    """The verb raises a one-line DeepslimError with a hint, mentioning ``words``, and leaves the model as it was."""
    state = _state(model)
    with pytest.raises(DeepslimError) as err:
        verb.call(case, model, tmp_path)
    message = str(err.value)
    assert "\n" not in message and err.value.hint, message
    for word in words:
        assert word in f"{message} {err.value.hint}", message
    _assert_same_state(state, model)


def _op_types(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def _task(case: ModelCase):
    return deepslim.Classification() if case.task == "classification" else deepslim.EmbeddingMatch("cosine")


# -- the verb table ---------------------------------------------------------------------------------------
@dataclass
class Verb:
    """One row: ``call(case, model, tmp)`` runs the verb (only that); ``check(case, model, result, before)``
    asserts on its output (``before``: an untouched copy of the model, its outputs, MACs and state). The flags say which
    bad-input tests apply: it takes example inputs, it takes data batches, it reads the model's outputs."""

    name: str
    call: Callable[[ModelCase, nn.Module, Path], Any]
    check: Callable[[ModelCase, nn.Module, Any, SimpleNamespace], None]
    takes_inputs: bool = True
    uses_data: bool = False
    reads_outputs: bool = True
    kind: str = ""          # the name a case's ``not_applicable`` uses (defaults to ``name``)


def _profile_check(case, model, prof, before):
    assert prof.macs > 0 and prof.params == _unique_params(model)
    assert list(prof.output_shape) == list(before.outputs[0].shape)
    if case.example_macs is not None:
        assert prof.macs == case.example_macs


def _export_onnx_call(case, model, tmp):
    return deepslim.export_onnx(model, tmp / "model.onnx", case.example, dynamic_sequence=case.dynamic_sequence)


def _export_onnx_check(case, model, result, before):
    assert result["max_abs_diff"] < 1e-4
    inputs = split_batch(case.batches[0])[0]  # another batch size: the batch axis is dynamic
    if case.dynamic_sequence:
        inputs = _shorter(inputs, 5)
    _assert_close(_ort_outputs(Path(result["path"]), inputs), _outputs(model, inputs))


def _prune_call(config):
    def call(case, model, tmp):
        return deepslim.prune_(model, copy.deepcopy(config), example_inputs=case.example)
    return call


def _attention_consistent(model: nn.Module) -> None:
    """Head bookkeeping matches the projections (what a forward relies on after head pruning)."""
    for name, m in model.named_modules():
        if hasattr(m, "num_attention_heads") and hasattr(m, "query"):  # Hugging Face self-attention
            assert m.num_attention_heads * m.attention_head_size == m.all_head_size == m.query.out_features, name
        if isinstance(m, nn.MultiheadAttention):
            assert m.num_heads * m.head_dim == m.embed_dim, name


def _prune_check(case, model, plan, before):
    outputs = _outputs(model, case.example)
    assert [o.shape for o in outputs] == [o.shape for o in before.outputs]
    assert all(torch.isfinite(o).all() for o in outputs)
    _assert_ties(case, model)
    _attention_consistent(model)
    if plan.structured:
        assert _macs(model, case.example) < before.macs, "structured pruning left the MACs as they were"
        assert _unique_params(model) < before.params
    else:
        config = plan.config
        target = getattr(config, "sparsity", None)
        target = 1 - config.n / config.m if target is None else target
        assert len(plan.masks) > 0 and abs(plan.masks.sparsity() - target) < 0.05
        modules = dict(model.named_modules())
        for name, mask in plan.masks.masks.items():
            assert not modules[name].weight.detach()[~mask].any(), f"{name}: masked weights are not zero"


def _factorize_call(case, model, tmp):
    return deepslim.factorize_(model, deepslim.Factorization(method="svd", mac_ratio=0.8), case.example)


def _factorize_check(case, model, plan, before):
    assert plan.layers, "no layer was factorized"
    assert plan.macs_after < plan.macs_before
    assert _macs(model, case.example) < before.macs
    assert [o.shape for o in _outputs(model, case.example)] == [o.shape for o in before.outputs]
    _assert_ties(case, model)


def _quantize_call(case, model, tmp):
    return deepslim.quantize_(model, deepslim.PTQConfig(), case.batches)


def _quantize_check(case, model, quantized, before):
    _assert_same_state(before.state, model)  # quantize_ works on a copy
    from deepslim.quantize import QuantLayer

    assert any(isinstance(m, QuantLayer) for m in quantized.modules())
    inputs = split_batch(case.batches[0])[0]  # calibrated on: ranges cover it (a batch of 2 might fall outside)
    _assert_close(_outputs(quantized, inputs), _outputs(model, inputs), rtol_of_range=INT8_RTOL)


def _export_int8_call(case, model, tmp):
    return deepslim.export_int8(model, case.batches, tmp / "model.int8.onnx")


def _export_int8_check(case, model, info, before):
    _assert_same_state(before.state, model)
    path = Path(info["path"])
    assert info["quantized_nodes"] and {"QuantizeLinear", "DequantizeLinear"} <= _op_types(path)
    inputs = split_batch(case.batches[1])[0]
    _assert_close(_ort_outputs(path, inputs), _outputs(model, inputs), rtol_of_range=INT8_RTOL)


# AdaRound needs at least 64 calibration samples; the cases carry 24, so they are seen three times.
def _adaround_call(case, model, tmp):
    report: dict = {}
    config = deepslim.PTQConfig(rounding="adaround", adaround_iterations=20)
    return deepslim.quantize_(model, config, case.batches * 3, report=report), report


def _adaround_check(case, model, result, before):
    """Every rounded layer's weight already lies on its grid (the twin rounds it to itself); tied
    layers are named and left at round-to-nearest, the shared tensor untouched."""
    quantized, report = result
    _assert_same_state(before.state, model)
    from deepslim.quantize import QuantLayer

    assert report["layers"], "AdaRound rounded no layer"
    modules = dict(quantized.named_modules())
    for name in report["layers"]:
        layer = modules[name]
        assert isinstance(layer, QuantLayer), name
        assert torch.allclose(layer.quantized_weight(), layer.layer.weight, atol=1e-6, rtol=1e-5), name
    for alias, source in case.ties:
        assert alias.rpartition(".")[0] in report["nearest"] or source.rpartition(".")[0] in report["nearest"]
    inputs = split_batch(case.batches[0])[0]
    _assert_close(_outputs(quantized, inputs), _outputs(model, inputs), rtol_of_range=INT8_RTOL)


def _export_int8_dynamic_call(case, model, tmp):
    return deepslim.export_int8_dynamic(model, case.example, tmp / "model.dyn.onnx")


def _export_int8_dynamic_check(case, model, info, before):
    _assert_same_state(before.state, model)
    path = Path(info["path"])
    assert _op_types(path) & {"MatMulInteger", "DynamicQuantizeLinear", "DynamicQuantizeMatMul"}
    inputs = split_batch(case.batches[1])[0]
    _assert_close(_ort_outputs(path, inputs), _outputs(model, inputs), rtol_of_range=INT8_RTOL)


@torch.no_grad()
def _task_loss(model: nn.Module, case: ModelCase) -> float:
    task = _task(case)
    return sum(float(task.loss(call_model(model.eval(), split_batch(b)[0]),
                               move_target(split_batch(b)[1], model_device(model))))
               for b in case.batches)


def _train_call(case, model, tmp):
    return deepslim.train(model, case.batches, deepslim.TrainConfig(epochs=4, batch_size=8, optimizer="adamw",
                                                                    lr=1e-2, weight_decay=0.0), task=_task(case))


def _train_check(case, model, history, before):
    assert len(history) == 4
    assert _task_loss(model, case) < _task_loss(before.model, case)
    _assert_ties(case, model)


def _evaluate_call(case, model, tmp):
    return deepslim.evaluate(model, case.batches, batch_size=8, task=_task(case))


def _evaluate_check(case, model, result, before):
    _assert_same_state(before.state, model)
    task = _task(case)
    scores = torch.cat([task.scores(_outputs(model, split_batch(b)[0])[0], split_batch(b)[1]).float()
                        for b in case.batches])
    assert result["n"] == len(scores)
    assert result[task.metric_name] == pytest.approx(task.scale * float(scores.mean()), abs=1e-4)


def _distance(student: nn.Module, teacher: nn.Module, case: ModelCase) -> float:
    """What distillation shrinks: the gap in predicted probabilities (classification; logits may shift
    freely) or the cosine gap between embeddings."""
    total = 0.0
    for batch in case.batches:
        s, t = (_outputs(m, split_batch(batch)[0])[0] for m in (student, teacher))
        if case.task == "classification":
            total += float((s.softmax(-1) - t.softmax(-1)).abs().sum(-1).mean())
        else:
            total += float((1 - torch.nn.functional.cosine_similarity(s, t, dim=-1)).mean())
    return total


def _distill_call(case, model, tmp):
    teacher = case.fresh()
    with torch.no_grad():  # a teacher near the student: distillation must bring the student nearer
        for p in teacher.parameters():
            p.add_(0.3 * p.std() * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    teacher_state = _state(teacher)
    history = deepslim.distill(model, teacher, case.batches,
                               deepslim.TrainConfig(epochs=4, batch_size=8, optimizer="adamw", lr=1e-3,
                                                    weight_decay=0.0),
                               deepslim.KD(alpha=1.0), task=_task(case))
    return SimpleNamespace(history=history, teacher=teacher, teacher_state=teacher_state)


def _distill_check(case, model, result, before):
    assert len(result.history) == 4
    _assert_same_state(result.teacher_state, result.teacher)  # the teacher is frozen
    assert _distance(model, result.teacher, case) < 0.95 * _distance(before.model, result.teacher, case)
    _assert_ties(case, model)


def _save_load_call(case, model, tmp):
    deepslim.save(model, tmp / "artifact", allow_modules=case.allow_modules)
    return deepslim.load(tmp / "artifact", allow_modules=case.allow_modules)


def _save_load_check(case, model, loaded, before):
    assert type(loaded) is type(model)
    _assert_same_state(before.state, loaded)  # weights and persistent buffers
    assert {n for n, _ in loaded.named_buffers()} == {n for n, _ in model.named_buffers()}
    _assert_ties(case, loaded)
    for got, want in zip(_outputs(loaded, case.example), before.outputs):
        assert torch.equal(got, want)


def _pruned_save_load_call(case, model, tmp):
    deepslim.prune_(model, deepslim.ChannelPruning(), example_inputs=case.example)
    return SimpleNamespace(loaded=_save_load_call(case, model, tmp), state=_state(model))


def _pruned_save_load_check(case, model, result, before):
    """What compression is for: the pruned model (new widths, resized buffers) saved and loaded back exactly."""
    assert _macs(model, case.example) < before.macs
    _save_load_check(case, model, result.loaded, SimpleNamespace(state=result.state,
                                                                 outputs=_outputs(model, case.example)))


def _prune_config_rows() -> list[Verb]:
    """One row per pruning config defined in deepslim/prune/config.py, at its default settings."""
    configs = [cls for _, cls in inspect.getmembers(prune_configs, inspect.isclass)
               if issubclass(cls, Config) and cls.__module__ == prune_configs.__name__]
    return [Verb(f"prune_:{cls.__name__}", _prune_call(cls()), _prune_check, kind=cls.__name__,
                 reads_outputs=issubclass(cls, prune_configs.STRUCTURED)) for cls in configs]


VERBS: list[Verb] = [
    Verb("profile", lambda case, model, tmp: deepslim.profile(model, case.example), _profile_check),
    Verb("export_onnx", _export_onnx_call, _export_onnx_check),
    *_prune_config_rows(),
    Verb("factorize_", _factorize_call, _factorize_check, reads_outputs=False),
    Verb("quantize_", _quantize_call, _quantize_check, uses_data=True, reads_outputs=False),
    Verb("export_int8", _export_int8_call, _export_int8_check, uses_data=True),
    Verb("quantize_:adaround", _adaround_call, _adaround_check, uses_data=True, reads_outputs=False),
    Verb("export_int8_dynamic", _export_int8_dynamic_call, _export_int8_dynamic_check),
    Verb("train", _train_call, _train_check, uses_data=True),
    Verb("evaluate", _evaluate_call, _evaluate_check, uses_data=True),
    Verb("distill", _distill_call, _distill_check, uses_data=True),
    Verb("save_load", _save_load_call, _save_load_check, takes_inputs=False, reads_outputs=False),
    Verb("prune_then_save_load", _pruned_save_load_call, _pruned_save_load_check),
]


def _skip_if_not_applicable(case: ModelCase, verb: Verb, model: nn.Module, tmp_path: Path) -> None:
    """Skip, with the case's reason, a verb that cannot apply; it must first refuse the model clearly."""
    reason = case.not_applicable.get(verb.kind or verb.name)
    if reason:
        _expect_refusal(verb, case, model, tmp_path)
        pytest.skip(f"{verb.name} does not apply to {case.name} (and says so): {reason}")


# -- the contract ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
@pytest.mark.parametrize("case_name", list(CASES))
def test_verb_on_foreign_model(case_name, verb, tmp_path):
    case = CASES[case_name]
    for package in case.requires:  # in the test extra; skipped (with the reason) only where it is missing
        pytest.importorskip(package)
    model = case.fresh()
    _skip_if_not_applicable(case, verb, model, tmp_path)
    reference = case.fresh()
    before = SimpleNamespace(model=reference, outputs=_outputs(reference, case.example), state=_state(reference),
                             macs=_macs(reference, case.example), params=_unique_params(reference))
    result = verb.call(case, model, tmp_path)
    verb.check(case, model, result, before)


# -- bad input: one-line error with a hint, model untouched -------------------------------------------------
class NotTensorOutputs(nn.Module):
    """Returns an object holding a tensor: not a tensor, tuple or dict."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(4, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x):
        return SimpleNamespace(logits=self.fc2(torch.relu(self.fc1(x))))


def _with_inputs(case: ModelCase, inputs) -> ModelCase:
    return dataclasses.replace(case, example=inputs, batches=[(inputs, target) for _, target in case.batches])


@pytest.mark.parametrize("verb", [v for v in VERBS if v.takes_inputs], ids=lambda v: v.name)
def test_inputs_that_do_not_match_forward_are_refused(verb, tmp_path):
    case = CASES["two_input"]
    image_only = split_batch(case.batches[0])[0][0]
    _expect_refusal(verb, _with_inputs(case, image_only), case.fresh(), tmp_path, "image", "features")


@pytest.mark.parametrize("verb", [v for v in VERBS if v.takes_inputs], ids=lambda v: v.name)
def test_a_dict_key_forward_does_not_take_is_refused(verb, tmp_path):
    case = CASES["dict_input"]
    inputs = dict(split_batch(case.batches[0])[0])
    inputs["token_type_ids"] = torch.zeros_like(inputs["input_ids"])
    _expect_refusal(verb, _with_inputs(case, inputs), case.fresh(), tmp_path, "token_type_ids")


@pytest.mark.parametrize("verb", [v for v in VERBS if v.uses_data], ids=lambda v: v.name)
def test_batches_of_mixed_structure_are_refused(verb, tmp_path):
    case = CASES["two_input"]
    (image, features), target = case.batches[1]
    mixed = [case.batches[0], ({"image": image, "features": features}, target)]  # each valid alone
    _expect_refusal(verb, dataclasses.replace(case, batches=mixed), case.fresh(), tmp_path, "structure")


@pytest.mark.parametrize("verb", VERBS, ids=lambda v: v.name)
def test_a_model_whose_outputs_are_not_tensors_is_refused(verb, tmp_path):
    if not verb.reads_outputs:
        pytest.skip(f"{verb.name} never reads the model's outputs, so their type does not matter to it")
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 4, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(2)]
    case = ModelCase("not_tensor_outputs", NotTensorOutputs, batches[0][0][:2], batches, "classification")
    _expect_refusal(verb, case, case.fresh(), tmp_path, "tensor", "tuple", "dict")  # names what is supported


class DefinedHere(nn.Module):
    """A class outside torch.nn and deepslim, like one in a user's script."""

    def __init__(self, width: int = 5):
        super().__init__()
        self.width = width
        self.fc = nn.Linear(3, width)

    def forward(self, x):
        return self.fc(x)


def test_save_load_of_a_class_outside_deepslim_needs_allow_modules(tmp_path):
    model, allow = DefinedHere(width=4).eval(), (DefinedHere.__module__,)
    for refused in (lambda: deepslim.save(model, tmp_path / "refused"),
                    lambda: deepslim.load(deepslim.save(model, tmp_path / "artifact", allow_modules=allow))):
        with pytest.raises(DeepslimError) as err:
            refused()
        assert "allow_modules" in f"{err.value} {err.value.hint}"
    loaded = deepslim.load(tmp_path / "artifact", allow_modules=allow)
    x = torch.randn(2, 3)
    assert torch.equal(loaded(x), model(x))
