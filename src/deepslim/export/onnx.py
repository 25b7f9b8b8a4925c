"""ONNX export with a parity check, and ONNX Runtime sessions."""

from __future__ import annotations

import copy
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..core import DeepslimError
from .files import write_atomic


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
        providers.insert(0, "CUDAExecutionProvider")
    try:
        return ort.InferenceSession(str(path), options, providers=providers)
    except Exception as exc:  # ORT raises its own exception types for bad files
        raise DeepslimError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from exc


def run_onnx(session, inputs: torch.Tensor) -> np.ndarray:
    name = session.get_inputs()[0].name
    return session.run(None, {name: inputs.detach().cpu().numpy()})[0]


def export_onnx(model: nn.Module, path: str | Path, example_inputs: torch.Tensor, *, opset: int = 17,
                dynamic_batch: bool = True, check: bool = True, atol: float = 1e-4) -> dict:
    """Export ``model`` to ONNX and check ONNX Runtime agrees with PyTorch.

    The file is written under a temporary name next to ``path`` and renamed only once the
    check passes, so a failed export leaves nothing behind (and a rerun is not refused for
    an existing file). Returns ``{"path", "max_abs_diff"}``; raises ``DeepslimError`` when
    the outputs differ by more than ``atol``.

    Example:
        >>> import torch, deepslim
        >>> model = deepslim.create_model("lenet5")
        >>> export_onnx(model, "/tmp/lenet.onnx", torch.randn(1, 1, 28, 28))["max_abs_diff"] < 1e-4
        True
    """
    path = Path(path)
    on_cpu = all(t.device.type == "cpu" for t in list(model.parameters()) + list(model.buffers()))
    model = (model if on_cpu else copy.deepcopy(model).cpu()).eval()  # never move the caller's model
    example_inputs = example_inputs.cpu()
    dynamic_axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    result = {"path": str(path), "max_abs_diff": None}

    def write(tmp: Path) -> None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
                torch.onnx.export(model, (example_inputs,), str(tmp), input_names=["input"],
                                  output_names=["logits"], dynamic_axes=dynamic_axes, opset_version=opset,
                                  dynamo=False)
        except DeepslimError:
            raise
        except Exception as exc:
            raise DeepslimError(f"ONNX export failed: {str(exc).splitlines()[0]}",
                                hint="a layer may not be supported by the ONNX exporter") from exc
        if check:  # before the rename: a file that fails its check never appears under ``path``
            result["max_abs_diff"] = _parity(model, tmp, example_inputs, atol)

    try:
        write_atomic(path, write)
    except OSError as exc:
        raise DeepslimError(f"cannot write {path}: {exc.strerror or exc}",
                            hint="choose a writable output path") from exc
    return result


def _parity(model: nn.Module, onnx_path: Path, example_inputs: torch.Tensor, atol: float) -> float:
    with torch.inference_mode():
        expected = model(example_inputs).numpy()
    got = run_onnx(onnx_session(onnx_path), example_inputs)
    diff = float(np.max(np.abs(got - expected))) if expected.size else 0.0
    if diff > atol:
        raise DeepslimError(f"ONNX Runtime's outputs differ from PyTorch's by {diff:.3g} (> {atol:g})",
                            hint="an operator exported with different semantics; please report it")
    return diff


def evaluate_onnx(path: str | Path, data, *, batch_size: int = 500, threads: int | None = None) -> dict:
    """Top-1 accuracy (%) and loss of an ONNX model on every sample of ``data`` (a TensorData), run by ONNX Runtime.

    Example:
        >>> evaluate_onnx("model.int8.onnx", deepslim.load_dataset("fashion-mnist").test)  # doctest: +SKIP
        {'accuracy': 93.4, 'loss': 0.21, 'n': 10000}
    """
    from ..core import progress

    session = onnx_session(path, threads=threads)
    correct, loss_sum, n = 0, 0.0, 0
    for start in progress(range(0, len(data), batch_size), desc="eval (onnxruntime)"):
        images, labels = data.images[start:start + batch_size], data.labels[start:start + batch_size]
        logits = torch.from_numpy(run_onnx(session, images))
        loss_sum += torch.nn.functional.cross_entropy(logits, labels, reduction="sum").item()
        correct += (logits.argmax(1) == labels).sum().item()
        n += len(labels)
    return {"accuracy": 100.0 * correct / max(1, n), "loss": loss_sum / max(1, n), "n": n}
