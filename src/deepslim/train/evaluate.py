"""Top-1 accuracy and loss over a whole split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core import DeepslimError, progress, resolve_device
from ..data import BatchLoader, TensorData


def check_input_shape(model: nn.Module, example: torch.Tensor, expected_classes: int | None = None) -> None:
    """Run one forward pass and turn a shape mismatch into a clear error."""
    try:
        with torch.inference_mode():
            out = model(example)
    except RuntimeError as exc:
        raise DeepslimError(f"the model does not accept inputs of shape {tuple(example.shape)}: "
                            f"{str(exc).splitlines()[0]}",
                            hint="check the data set / --input-shape matches what the model was built for") from exc
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise DeepslimError(f"the model returned {type(out).__name__} of shape "
                            f"{getattr(out, 'shape', '?')}, expected logits (batch, classes)")
    if expected_classes is not None and out.shape[1] != expected_classes:
        raise DeepslimError(f"the model predicts {out.shape[1]} classes but the data set has {expected_classes}",
                            hint="use a model built with num_classes matching the data")


def evaluate(model: nn.Module, data: TensorData, *, batch_size: int = 1000, device="auto",
             desc: str = "eval") -> dict:
    """Top-1 accuracy (%) and mean cross-entropy over every sample of ``data``.

    Example:
        >>> from deepslim import create_model, load_dataset
        >>> data = load_dataset("synthetic", subset=64)
        >>> evaluate(create_model("lenet5"), data.test)["n"]
        400
    """
    dev = resolve_device(device)
    was_training = model.training
    model.eval()
    model.to(dev)
    check_input_shape(model, data.images[:2].to(dev))
    correct, loss_sum, n = 0, 0.0, 0
    with torch.inference_mode():
        for x, y in progress(BatchLoader(data, batch_size, device=dev), desc=desc):
            logits = model(x)
            loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
    model.train(was_training)
    return {"accuracy": 100.0 * correct / max(1, n), "loss": loss_sum / max(1, n), "n": n}


def top1_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy (%) of ``model`` as it is (mode and device untouched), no progress bar: for inner loops
    such as sensitivity sweeps that evaluate many variants."""
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(labels), batch_size):
            correct += (model(images[i:i + batch_size]).argmax(1) == labels[i:i + batch_size]).sum().item()
    return 100.0 * correct / max(1, len(labels))
