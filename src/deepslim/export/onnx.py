"""ONNX export with a parity check, and ONNX Runtime sessions."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core import DeepslimError, eval_mode
from ..core.inputs import check_inputs
from .files import write_atomic
from .onnx_io import ExportPlan, ort_feed, plan_export, resized


def onnx_session(path: str | Path, *, threads: int | None = None, device: str = "cpu", spinning: bool = True,
                 stop_spinning_between_runs: bool = False):
    """An ONNX Runtime ``InferenceSession`` (CPU unless ``device='cuda'`` and the CUDA provider exists).

    ``spinning=False`` stops idle intra-op threads from busy-waiting: needed when two sessions
    take turns on the same cores (interleaved A/B timing), where one session's spinning threads
    otherwise steal the other's cores. ``stop_spinning_between_runs`` keeps spinning within a
    call but stops it when the call returns (ORT's ``session.force_spinning_stop``).

    Example:
        >>> session = onnx_session("model.onnx", threads=2)       # doctest: +SKIP
        >>> logits = session.run(None, {"input": x.numpy()})[0]   # doctest: +SKIP
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if stop_spinning_between_runs:
        options.add_session_config_entry("session.force_spinning_stop", "1")
    providers = ["CPUExecutionProvider"]
    if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
        index = torch.device(device).index  # the GPU the caller named (cuda:1), else the current one
        providers.insert(0, ("CUDAExecutionProvider",
                             {"device_id": index if index is not None else torch.cuda.current_device()}))
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # ORT raises its own exception types for bad files
        raise DeepslimError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from exc


def run_onnx(session, inputs) -> np.ndarray:
    """The first output of ``session`` on ``inputs`` (a tensor, a tuple, or a dict fed by name)."""
    return session.run(None, ort_feed(session, inputs))[0]


def run_onnx_outputs(session, inputs) -> list[np.ndarray]:
    """Every output of ``session`` on ``inputs``, in the graph's order (``output_0``, ``output_1`` ...)."""
    return session.run(None, ort_feed(session, inputs))


def export_onnx(model: nn.Module, path: str | Path, example_inputs, *, opset: int = 17,
                dynamic_batch: bool = True, dynamic_sequence: bool = False, dynamic_axes: dict | None = None,
                check: bool = True, atol: float = 1e-4) -> dict:
    """Export ``model`` to ONNX and check ONNX Runtime agrees with PyTorch.

    ``example_inputs`` is a tensor, a tuple (positional arguments) or a dict (keyword arguments), see
    ``deepslim.core.inputs``. Graph inputs are named ``input`` for a single tensor, else after the
    dict's keys or ``forward``'s parameters; outputs are ``logits`` for a single tensor input (as
    deployed files have always been), else ``output`` or ``output_0``, ``output_1`` ... for every tensor
    the model returns (tuples, dicts and Hugging Face ``ModelOutput`` are flattened). Axis 0 of every
    input and output is dynamic (``dynamic_batch``); ``dynamic_sequence=True`` also frees axis 1 of every
    token-id / mask input (rank >= 2, integer or bool or named *mask*) and of per-token outputs;
    ``dynamic_axes={name: {axis: label}}`` adds any others. Tuples and dicts are exported through
    ``onnx_io.FlatCall`` (nodes and weights keep the model's own names); and since the TorchScript
    exporter can bake an example's size into a Reshape, their check also runs the file at another
    batch size and sequence length (as does a tensor's when dynamic axes beyond the batch are asked).

    The file is written under a temporary name next to ``path`` and renamed only once the
    check passes, so a failed export leaves nothing behind (and a rerun is not refused for
    an existing file). Returns ``{"path", "max_abs_diff", "input_names", "output_names"}``; raises
    ``DeepslimError`` when the outputs differ by more than ``atol``, when the inputs do not match
    ``forward`` or when the model returns something other than tensors. The model is left as it was
    (mode, device, weights).

    Example:
        >>> import torch, deepslim
        >>> model = deepslim.create_model("lenet5")
        >>> export_onnx(model, "/tmp/lenet.onnx", torch.randn(1, 1, 28, 28))["max_abs_diff"] < 1e-4
        True
        >>> ids = torch.randint(0, 100, (1, 12))
        >>> encoder = torch.nn.Sequential(torch.nn.Embedding(100, 16), torch.nn.Linear(16, 4))
        >>> export_onnx(encoder, "/tmp/enc.onnx", (ids,), dynamic_sequence=True)["input_names"]
        ['input']
    """
    check_inputs(model, example_inputs)  # before anything is touched: names forward's parameters
    path = Path(path)
    on_cpu = all(t.device.type == "cpu" for t in list(model.parameters()) + list(model.buffers()))
    with eval_mode(model):  # each of the caller's modules back in its own mode after; a copy made here is in eval
        model = model if on_cpu else copy.deepcopy(model).cpu()  # never move the caller's model
        plan = plan_export(model, example_inputs, batch=dynamic_batch, sequence=dynamic_sequence,
                           extra_axes=dynamic_axes)
        result = {"path": str(path), "max_abs_diff": None, "input_names": plan.input_names,
                  "output_names": plan.output_names}

        def write(tmp: Path) -> None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                    torch.onnx.export(plan.module, plan.args, str(tmp), input_names=plan.input_names,
                                      output_names=plan.output_names, dynamic_axes=plan.dynamic_axes,
                                      opset_version=opset, dynamo=False)
            except DeepslimError:
                raise
            except Exception as exc:
                _refuse_non_tensor_outputs(plan)  # their clear error rather than the exporter's
                raise DeepslimError(f"ONNX export failed: {(str(exc).splitlines() or [type(exc).__name__])[0]}",
                                    hint="a layer may not be supported by the ONNX exporter") from exc
            if check:  # before the rename: a file that fails its check never appears under ``path``
                session = onnx_session(tmp)
                result["max_abs_diff"] = _parity(plan, session, atol)
                if plan.check_dynamic:
                    _check_free_axes(plan, session, atol, model)

        try:
            write_atomic(path, write)
        except OSError as exc:
            raise DeepslimError(f"cannot write {path}: {exc.strerror or exc}",
                                hint="choose a writable output path") from exc
    return result


def _refuse_non_tensor_outputs(plan: ExportPlan) -> None:
    """After a failed export of a single-tensor model (whose outputs are not looked at beforehand, so that
    path stays as it always was): raise ``output_tensors``' error if the outputs are what failed."""
    try:
        plan.run_torch(plan.named)
    except DeepslimError:
        raise
    except Exception:  # the forward itself fails: the exporter's message says more
        pass


def _max_diff(got: list[np.ndarray], expected: list[torch.Tensor]) -> float:
    if len(got) != len(expected):
        raise DeepslimError(f"the ONNX graph has {len(got)} outputs but the model returned {len(expected)} tensors",
                            hint="an output may have been folded into a constant; please report it")
    return max(float(np.max(np.abs(g - e.numpy()))) if e.numel() else 0.0 for g, e in zip(got, expected))


def _parity(plan: ExportPlan, session, atol: float) -> float:
    got = [run_onnx(session, plan.feed)]  # the first output as always (one output: the same single call)
    if len(session.get_outputs()) > 1:
        got += run_onnx_outputs(session, plan.feed)[1:]
    diff = _max_diff(got, plan.run_torch(plan.named))
    if diff > atol:
        raise DeepslimError(f"ONNX Runtime's outputs differ from PyTorch's by {diff:.3g} (> {atol:g})",
                            hint="an operator exported with different semantics; please report it")
    return diff


def _ort_reason(exc: Exception) -> str:
    """The readable end of an ONNX Runtime error (its first line also names C++ files and checks)."""
    text = (str(exc).splitlines() or [type(exc).__name__])[0].split("Status Message:")[-1]
    return text.split(" was false. ")[-1].strip()[:200]


def _check_free_axes(plan: ExportPlan, session, atol: float, model: nn.Module) -> None:
    """Run the file at other sizes of its free axes: the TorchScript exporter can bake an example's size
    into a Reshape, and the file would then fail on the first batch or sentence of another size."""
    other = resized(plan.named, plan.dynamic_axes)
    try:
        expected = plan.run_torch(other)
    except Exception:  # the model itself refuses those sizes (e.g. a fixed length): nothing to compare
        return
    labels = sorted({label for name, free in (plan.dynamic_axes or {}).items() if name in plan.named
                     for label in free.values()})
    try:
        diff = _max_diff(run_onnx_outputs(session, other), expected)
        problem = f"differ from PyTorch's by {diff:.3g}" if diff > atol else None
    except DeepslimError:
        raise
    except Exception as exc:  # ONNX Runtime's own error types
        problem = f"fail in ONNX Runtime ({_ort_reason(exc)})"
    if problem is None:
        return
    mha = any(isinstance(m, nn.MultiheadAttention) for m in model.modules())
    hint = ("the TorchScript exporter fixes nn.MultiheadAttention's sequence length (pytorch/pytorch#110347): "
            "export with dynamic_sequence=False and pad inputs to this length, or use attention that reshapes "
            "with the tensors' own shapes (e.g. Hugging Face's)" if mha and set(labels) - {"batch"}
            else "the model computes a shape from the example's sizes; export without that dynamic axis "
                 "(dynamic_batch=False / dynamic_sequence=False) and feed inputs of exactly the example's size")
    raise DeepslimError(f"the exported graph was meant to take other sizes of {', '.join(labels)}, but its outputs "
                        f"at other sizes {problem}", hint=hint)


def evaluate_onnx(path: str | Path, data, *, batch_size: int = 500, threads: int | None = None) -> dict:
    """Top-1 accuracy (%) and loss of an ONNX classifier on every sample of ``data``, run by ONNX Runtime.

    ``data`` is a ``TensorData``, or any iterable of ``(inputs, labels)`` batches whose inputs take any
    form (a tensor, a tuple, a dict keyed by the ONNX input names); the first output is the logits.

    Example:
        >>> evaluate_onnx("model.int8.onnx", deepslim.load_dataset("fashion-mnist").test)  # doctest: +SKIP
        {'accuracy': 93.4, 'loss': 0.21, 'n': 10000}
    """
    from ..core import progress
    from ..core.inputs import split_batch

    session = onnx_session(path, threads=threads)
    if hasattr(data, "images") and hasattr(data, "labels"):
        batches = ((data.images[start:start + batch_size], data.labels[start:start + batch_size])
                   for start in range(0, len(data), batch_size))
        batches = progress(batches, total=-(-len(data) // batch_size), desc="eval (onnxruntime)")
    else:
        batches = (split_batch(batch) for batch in data)
    correct, loss_sum, n = 0, 0.0, 0
    for inputs, labels in batches:
        if labels is None:
            raise DeepslimError("evaluate_onnx needs class labels: a batch came without a target",
                                hint="yield (inputs, labels) batches")
        logits = torch.from_numpy(run_onnx(session, inputs))
        loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        n += len(labels)
    return {"accuracy": 100.0 * correct / max(1, n), "loss": loss_sum / max(1, n), "n": n}
