"""Top-1 accuracy and loss over a whole split."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core import DeepslimError, eval_mode, progress, resolve_device
from ..core.inputs import call_model, check_inputs, describe_shapes, model_device, output_tensors
from ..data import BatchLoader, TensorData
from .batches import evaluate_batches
from .task import Classification, resolve_task


def check_input_shape(model: nn.Module, example, expected_classes: int | None = None, *,
                      logits: bool = True) -> None:
    """Run one forward pass on ``example`` and turn a mismatch into a clear error.

    ``example`` is a tensor, a tuple (positional arguments) or a dict (keyword arguments), moved to
    the model's device. Inputs that ``forward`` cannot take are refused naming its parameters. With
    ``logits=True`` (classifiers) the output, or a tuple/dict's first tensor, must be (batch, classes)
    logits, ``expected_classes`` of them when given; ``logits=False`` (embedders, detectors ...) only
    requires that the model returns tensors.

    Example:
        >>> check_input_shape(nn.Linear(8, 3), torch.zeros(2, 8), expected_classes=3)
        >>> check_input_shape(nn.Linear(8, 3), {"input": torch.zeros(2, 8)}, logits=False)
    """
    is_image = isinstance(example, torch.Tensor)
    check_inputs(model, example)
    try:
        with torch.inference_mode():
            out = call_model(model, example)
    except DeepslimError:
        raise
    except Exception as exc:  # RuntimeError from torch; layers also assert (nn.MultiheadAttention) or raise ValueError
        raise DeepslimError(f"the model does not accept inputs of shape {describe_shapes(example)}: "
                            f"{(str(exc).splitlines() or [type(exc).__name__])[0]}",
                            hint="check the data set / --input-shape matches what the model was built for" if is_image
                            else "check each input's shape and dtype against what forward expects") from exc
    if not isinstance(out, torch.Tensor):
        found = output_tensors(out)  # refuses outputs that are not tensors, naming the supported ones
        if not is_image:
            out = found[0]  # e.g. a Hugging Face ModelOutput's logits
    if not logits:
        return
    if not isinstance(out, torch.Tensor) or out.ndim != 2:
        raise DeepslimError(f"the model returned {type(out).__name__} of shape "
                            f"{getattr(out, 'shape', '?')}, expected logits (batch, classes)")
    if expected_classes is not None and out.shape[1] != expected_classes:
        raise DeepslimError(f"the model predicts {out.shape[1]} classes but the data set has {expected_classes}",
                            hint="use a model built with num_classes matching the data")


def evaluate(model: nn.Module, data, *, batch_size: int = 1000, device="auto", desc: str = "eval",
             task=None, loss_fn=None, metric=None) -> dict:
    """Top-1 accuracy (%) and mean cross-entropy over every sample of ``data``; for other tasks, the task's metric.

    ``data`` is ``TensorData`` or any iterable of batches (``inputs`` or ``(inputs, target)``, see
    ``train.batches``). ``task`` (default ``Classification()``) or ``loss_fn=``/``metric=`` say how
    outputs are judged: the result holds ``task.metric_name`` (``"accuracy"``, ``"cosine"``, ...),
    ``"loss"`` (per-sample mean) and ``"n"`` (samples).

    Example:
        >>> from deepslim import create_model, load_dataset
        >>> data = load_dataset("synthetic", subset=64)
        >>> evaluate(create_model("lenet5"), data.test)["n"]
        400
    """
    task = resolve_task(task, loss_fn, metric)
    if not isinstance(data, TensorData) or type(task) is not Classification:
        return evaluate_batches(model, data, task, batch_size=batch_size, device=device, desc=desc)
    # Image classification on TensorData: the path every published figure came from, kept as it was.
    dev = resolve_device(device)
    model.to(dev)
    correct, loss_sum, n = 0, 0.0, 0
    with eval_mode(model):
        check_input_shape(model, data.images[:2].to(dev))
        with torch.inference_mode():
            for x, y in progress(BatchLoader(data, batch_size, device=dev), desc=desc):
                logits = model(x)
                loss_sum += F.cross_entropy(logits, y, reduction="sum").item()
                correct += (logits.argmax(1) == y).sum().item()
                n += len(y)
    return {"accuracy": 100.0 * correct / max(1, n), "loss": loss_sum / max(1, n), "n": n}


def top1_accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000) -> float:
    """Top-1 accuracy (%) of ``model`` as it is (mode and device untouched), no progress bar: for inner loops
    such as sensitivity sweeps that evaluate many variants."""
    correct, device = 0, model_device(model)
    with torch.inference_mode():
        for i in range(0, len(labels), batch_size):
            # callers may keep the data on the CPU while the model is on a GPU; .to() is a no-op otherwise
            predicted = model(images[i:i + batch_size].to(device)).argmax(1)
            correct += (predicted == labels[i:i + batch_size].to(device)).sum().item()
    return 100.0 * correct / max(1, len(labels))
