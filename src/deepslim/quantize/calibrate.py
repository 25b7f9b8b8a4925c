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
from ..export.onnx import onnx_session

MAX_SAMPLES = 200_000


def _float_tensors(model: onnx.ModelProto) -> list[str]:
    inferred = onnx.shape_inference.infer_shapes(model)
    types = {v.name: v.type.tensor_type.elem_type for v in list(inferred.graph.value_info) + list(inferred.graph.input)
             + list(inferred.graph.output)}
    initializers = {i.name for i in model.graph.initializer}
    names = []
    for node in model.graph.node:
        for name in list(node.input) + list(node.output):
            if name and name not in initializers and types.get(name) == onnx.TensorProto.FLOAT and name not in names:
                names.append(name)
    return names


def collect_activations(onnx_path: str | Path, images: torch.Tensor, batch_size: int = 64, seed: int = 0) -> dict[str, np.ndarray]:
    """Samples (up to 200k values) of every float activation of the model on ``images``."""
    if len(images) == 0:
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
        input_name = session.get_inputs()[0].name
        expected = session.get_inputs()[0].shape
        if len(expected) != images.ndim or any(isinstance(e, int) and e != s for e, s in zip(expected[1:], images.shape[1:])):
            raise DeepslimError(f"calibration images have shape {tuple(images.shape)}, the model expects {expected}",
                                hint="calibrate with data shaped like the model's input")
        outputs = [o.name for o in session.get_outputs()]
        rng = np.random.default_rng(seed)
        chunks: dict[str, list[np.ndarray]] = {n: [] for n in names}
        batches = range(0, len(images), batch_size)
        per_batch = max(1, MAX_SAMPLES // max(1, len(batches)))
        for start in progress(batches, desc="calibrate"):
            values = session.run(outputs, {input_name: images[start:start + batch_size].numpy()})
            for name, value in zip(outputs, values):
                if name in chunks:
                    flat = value.ravel()
                    if flat.size > per_batch:
                        flat = rng.choice(flat, per_batch, replace=False)
                    chunks[name].append(flat)
    finally:
        augmented.unlink(missing_ok=True)
    return {n: np.concatenate(c) for n, c in chunks.items() if c}
