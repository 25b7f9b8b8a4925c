"""Collect activation samples from an ONNX model over calibration data.

Every float tensor that feeds or leaves a node is made a graph output, the model runs on the
calibration batches, and a bounded random sample of each tensor's values is kept, enough for
the observers' quantiles and histograms without holding whole activations.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch

from ..core import DeepslimError, progress
from ..core.inputs import tensors
from ..export.onnx import onnx_session
from ..export.onnx_io import ort_feed

MAX_SAMPLES = 200_000


def _float_tensors(model: onnx.ModelProto) -> list[str]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.input)
             + list(inferred.graph.output)}
    initializers = {i.name for i in model.graph.initializer}
    names, seen = [], set()  # a list for a stable order, a set so that large graphs stay fast
    for node in model.graph.node:
        for name in list(node.input) + list(node.output):
            if name and name not in initializers and types.get(name) == onnx.TensorProto.FLOAT and name not in seen:
                names.append(name)
                seen.add(name)
    return names


def _check_shapes(session, feed: dict[str, np.ndarray], index: int) -> None:
    """Refuse a batch whose fixed axes differ from the exported graph's (e.g. another sequence length)."""
    for graph_input in session.get_inputs():
        value = feed[graph_input.name]
        expected = graph_input.shape
        if len(expected) != value.ndim or any(isinstance(e, int) and e != n for e, n in zip(expected, value.shape)):
            raise DeepslimError(f"calibration batch {index} gives '{graph_input.name}' the shape {value.shape}, "
                                f"the exported model takes {expected}",
                                hint="pad the batches to one length, or pass dynamic_sequence=True")


def feeds(session, input_names: list[str], inputs) -> dict[str, np.ndarray]:
    """ONNX Runtime feeds for one batch: a tensor goes to the only input (as always); tuples and dicts go
    by the names ``export_onnx`` gave the graph's inputs (``ort_feed`` skips any the exporter dropped)."""
    if isinstance(inputs, torch.Tensor):
        return ort_feed(session, inputs)
    return ort_feed(session, dict(zip(input_names, tensors(inputs))))


def collect_activations(onnx_path: str | Path, batches, input_names: list[str] | None = None, batch_size: int = 64,
                        seed: int = 0) -> dict[str, np.ndarray]:
    """Samples (up to 200k values) of every float activation of the model over the calibration data.

    ``batches`` is an image tensor (run in chunks of ``batch_size``) or a list of input batches of
    any form (``core.inputs``), fed to the ONNX inputs called ``input_names`` (as ``export_onnx``
    returns them).

    Example:
        >>> samples = collect_activations("fp32.onnx", torch.randn(128, 1, 28, 28))  # doctest: +SKIP
    """
    if isinstance(batches, torch.Tensor):
        batches = [batches[s:s + batch_size] for s in range(0, len(batches), batch_size)]
    if not batches:
        raise DeepslimError("the calibration set is empty", hint="pass at least one calibration image")
    model = onnx.load(str(onnx_path))
    names = _float_tensors(model)
    existing = {o.name for o in model.graph.output}
    for name in names:
        if name not in existing:
            model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    augmented = Path(onnx_path).with_suffix(".calib.onnx")
    onnx.save(model, str(augmented))
    try:
        session = onnx_session(augmented)
        first = batches[0]
        if isinstance(first, torch.Tensor):
            expected = session.get_inputs()[0].shape
            fixed = zip(expected[1:], first.shape[1:])
            if len(expected) != first.ndim or any(isinstance(e, int) and e != s for e, s in fixed):
                raise DeepslimError(f"calibration images have shape {tuple(first.shape)}, the model expects {expected}",
                                    hint="calibrate with data shaped like the model's input")
        outputs = [o.name for o in session.get_outputs()]
        rng = np.random.default_rng(seed)
        chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
        per_batch = max(1, MAX_SAMPLES // max(1, len(batches)))
        for index, inputs in enumerate(progress(batches, desc="calibrate")):
            feed = feeds(session, input_names or [], inputs)
            if not isinstance(inputs, torch.Tensor):
                _check_shapes(session, feed, index)
            values = session.run(outputs, feed)
            for name, value in zip(outputs, values):
                if name in chunks:
                    flat = value.ravel()
                    if flat.size > per_batch:
                        flat = rng.choice(flat, per_batch, replace=False)
                    chunks[name].append(flat)
    finally:
        augmented.unlink(missing_ok=True)
    return {n: np.concatenate(c) for n, c in chunks.items() if c}
