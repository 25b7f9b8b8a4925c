"""Calibration data in any form, as the list of input batches that calibration runs on.

Calibration is either images, as before (a tensor, or a ``TensorData`` whose ``images`` are
used), or any iterable of batches of any task, where a batch is ``inputs`` or
``(inputs, target)`` and ``inputs`` is a tensor, a tuple or a dict (``core.inputs``). Targets
are ignored: calibration only needs activations.

Example:
    >>> import torch
    >>> batches = [({"ids": torch.zeros(8, 5, dtype=torch.long)}, None)] * 3
    >>> calib = calibration_batches(batches, limit=20)
    >>> [len(b["ids"]) for b in calib.batches], calib.images is None
    ([8, 8, 4], True)
    >>> [len(b) for b in calibration_batches(torch.zeros(150, 1, 28, 28), limit=512).batches]
    [64, 64, 22]
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch
from torch import nn

from ..core import DeepslimError
from ..core.inputs import (
    Batch,
    batch_size,
    call_model,
    check_inputs,
    check_same_structure,
    output_tensors,
    slice_batch,
    split_batch,
    tensors,
)

# Images are calibrated in chunks of this many, as they always were (same ranges, same files).
IMAGE_CHUNK = 64

DATA_HINT = ("pass images (a tensor or a TensorData), or an iterable of batches, each `inputs` or "
             "`(inputs, target)`, with inputs a tensor, a tuple or a dict of tensors")


@dataclass
class CalibrationSet:
    """The input batches to calibrate on (at most the requested number of samples in all).

    ``images`` is the image tensor when the calibration was given as images (today's path,
    kept exactly: the batches are then its chunks of 64); ``None`` for batches of any form.
    """

    batches: list
    images: torch.Tensor | None = None

    @property
    def example(self):
        """The first batch's inputs (for checks and export)."""
        return self.batches[0]


def _images(calibration) -> torch.Tensor | None:
    """The image tensor of a tensor / TensorData calibration (detached, CPU, float); ``None`` otherwise."""
    images = getattr(calibration, "images", calibration)
    if not isinstance(images, torch.Tensor):
        return None
    if images.ndim < 2 or len(images) == 0:
        raise DeepslimError(f"the calibration set is empty or malformed (shape {tuple(images.shape)})",
                            hint="pass a batch of training images, e.g. data.train.images[:512]")
    # token ids (int32/int64) stay integers: an embedding looks them up; images become float as always
    if images.dtype in (torch.int32, torch.int64):
        return images.detach().cpu()
    return images.detach().cpu().float()


def calibration_batches(calibration, limit: int) -> CalibrationSet:
    """The first ``limit`` samples of ``calibration`` as a list of input batches (targets dropped).

    Refuses empty data, batches of mixed structure and values that are not data, in one line.
    """
    images = _images(calibration)
    if images is not None:
        images = images[:limit]
        return CalibrationSet([images[s:s + IMAGE_CHUNK] for s in range(0, len(images), IMAGE_CHUNK)], images)
    if isinstance(calibration, (Mapping, Batch)):  # one batch
        calibration = [calibration]
    if not isinstance(calibration, Iterable) or isinstance(calibration, (str, bytes)):
        raise DeepslimError(f"calibration data must be images or batches, got {type(calibration).__name__}",
                            hint=DATA_HINT)
    raw, taken = [], 0
    for batch in calibration:
        inputs, _ = split_batch(batch)
        n = batch_size(inputs)
        if n == 0:
            continue
        if taken + n > limit:  # the last batch is cut so that exactly ``limit`` samples calibrate
            batch, n = Batch(slice_batch(inputs, limit - taken)), limit - taken
        raw.append(batch)
        taken += n
        if taken >= limit:
            break
    if not raw:
        raise DeepslimError("the calibration set is empty", hint=DATA_HINT)
    check_same_structure(raw)
    return CalibrationSet([split_batch(b)[0] for b in raw])


def check_takes(model: nn.Module, inputs, *, tensor_outputs: bool = True) -> None:
    """Refuse, in one line, inputs the model cannot be called with (and, with ``tensor_outputs``,
    outputs that are not tensors), by calling the eval-mode model on two samples, before any work."""
    check_inputs(model, inputs)
    try:
        with torch.inference_mode():
            out = call_model(model, slice_batch(inputs, 2))
    except (RuntimeError, IndexError, TypeError, ValueError) as exc:
        shapes = ", ".join(str(tuple(t.shape)) for t in tensors(inputs))
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise DeepslimError(f"the model does not accept inputs of shape {shapes}: {reason}",
                            hint="give inputs shaped like what the model was built for") from exc
    if tensor_outputs:  # ONNX exports need tensors out; the PyTorch twin does not look at outputs
        output_tensors(out)
