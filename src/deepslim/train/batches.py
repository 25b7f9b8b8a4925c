"""Data given as any iterable of batches: checks before any work, and batches moved to the model's device.

A batch is ``inputs`` or ``(inputs, target)`` (``core.inputs.split_batch``); ``inputs`` is a tensor,
a tuple (positional arguments) or a dict (keyword arguments). A list of batches, a
``torch.utils.data.DataLoader`` or any object whose ``__iter__`` starts again each time will do.
The in-memory ``TensorData`` keeps its own loader (shuffling, augmentation); this module is for
everything else.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from deepslim.train.task import Classification
    >>> batches = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))] * 2
    >>> check_batches(nn.Linear(3, 2), Classification(), first_batches(batches))
    >>> count_batches(batches)
    2
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping

import torch
from torch import nn

from ..core import DeepslimError, eval_mode, progress, resolve_device
from ..core.inputs import batch_size as samples_in
from ..core.inputs import (
    call_model,
    check_inputs,
    check_same_structure,
    move_inputs,
    output_tensors,
    slice_batch,
    split_batch,
    to_device,
)
from ..data import BatchLoader, TensorData
from .task import Task, metric_value

CHECKED_BATCHES = 3  # how many leading batches are checked for one structure (a full pass could be costly)
DATA_HINT = "pass TensorData or an iterable of batches (a list, a DataLoader): each batch inputs or (inputs, target)"


def is_tensor_data(data) -> bool:
    return isinstance(data, TensorData)


def check_source(data, role: str = "data", *, reiterable: bool = False) -> None:
    """Refuse what is not an iterable of batches (a bare tensor or dict is one batch, not a data source);
    with ``reiterable``, also a one-shot iterator, which training would exhaust in its first epoch."""
    if isinstance(data, (torch.Tensor, Mapping)) or not isinstance(data, Iterable):
        raise DeepslimError(f"the {role} must be an iterable of batches, got a {type(data).__name__}",
                            hint=DATA_HINT + "; wrap a single batch in a list")
    if reiterable and isinstance(data, Iterator):  # a generator, iter(...): empty after one pass
        raise DeepslimError(f"the {role} is a one-shot iterator ({type(data).__name__}), but training reads it "
                            "once per epoch", hint="pass a list of batches, or an object whose __iter__ starts again "
                                               "(e.g. a DataLoader)")


def first_batches(data, k: int = CHECKED_BATCHES) -> list:
    """The first ``k`` batches of a re-iterable source (a fresh pass, so training then starts from batch 0)."""
    return list(itertools.islice(iter(data), k))


def count_batches(data) -> int:
    """Batches per pass: ``len(data)`` where defined, else counted with one pass."""
    try:
        return len(data)
    except TypeError:  # no __len__ (a generator-backed iterable, an IterableDataset's DataLoader)
        return sum(1 for _ in data)


def move_target(target, device):
    """``target`` on ``device``: tensors anywhere in nested tuples/lists/dicts moved, the rest kept."""
    if isinstance(target, torch.Tensor):
        return to_device(target, device)
    if isinstance(target, Mapping):
        return {k: move_target(v, device) for k, v in target.items()}
    if isinstance(target, (tuple, list)):
        return type(target)(move_target(v, device) for v in target)
    return target


def on_device(data, device) -> Iterable[tuple]:
    """``(inputs, target)`` pairs of ``data`` with their tensors on ``device``."""
    for batch in data:
        inputs, target = split_batch(batch)
        yield move_inputs(inputs, device), move_target(target, device)


def _first_two(target):
    """The target of the first two samples, where it is batched tensors (else as it is: a task's business)."""
    if isinstance(target, torch.Tensor):
        return target[:2] if target.ndim > 0 else target
    values = list(target.values()) if isinstance(target, Mapping) else target
    if isinstance(target, (tuple, Mapping)) and all(isinstance(v, torch.Tensor) and v.ndim > 0 for v in values):
        return slice_batch(target, 2)
    return target


def check_batches(model: nn.Module, task: Task, batches: list, *, target_optional: bool = False) -> None:
    """Refuse data the model or task cannot use, before any work is done, with one-line errors.

    Checks that the leading ``batches`` share one structure and all carry a target or none; that
    the inputs match ``forward``; that a target is there when ``task`` needs one (unless
    ``target_optional``: a callback such as distillation supplies the loss); and, with a forward
    pass of two samples in eval mode without gradients (the model's mode is restored, its weights
    and statistics untouched), that the outputs are tensors the task can judge.
    """
    if not batches:
        raise DeepslimError("the data holds no batch", hint=DATA_HINT)
    check_same_structure(batches)
    pairs = [split_batch(b) for b in batches]
    with_target = [t is not None for _, t in pairs]
    if any(with_target) and not all(with_target):
        first = with_target.index(not with_target[0])
        raise DeepslimError(f"batch {first} of the data {'carries' if with_target[first] else 'lacks'} a target "
                            f"but batch 0 {'does not' if with_target[first] else 'does'}",
                            hint="every batch must have the same form: all (inputs, target) or all inputs alone")
    inputs, target = pairs[0]
    check_inputs(model, inputs)
    if getattr(task, "teacher", None) is not None:  # judged against a teacher: it takes the same inputs
        check_inputs(task.teacher, inputs)
    if target is None and task.needs_target and not target_optional:
        raise DeepslimError(f"the batches carry no target, but the task {task!r} needs one",
                            hint="yield (inputs, target) batches, or judge against a teacher "
                                 "(EmbeddingMatch(teacher=...), deepslim.distill)")
    sample = slice_batch(inputs, 2)
    with eval_mode(model), torch.inference_mode():
        try:
            outputs = call_model(model, sample)
        except (RuntimeError, ValueError, IndexError, TypeError) as exc:
            raise DeepslimError(f"the model fails on the data's inputs: {str(exc).splitlines()[0]}",
                                hint="check the batches match what the model was built for") from exc
        output_tensors(outputs)
        reference = task.reference(sample, _first_two(target))
        if reference is not None:
            task.check(outputs, reference)


def evaluate_batches(model: nn.Module, data, task: Task, *, batch_size: int = 1000, device="auto",
                     desc: str = "eval") -> dict:
    """``task``'s metric (named by ``task.metric_name``; absent when the task has none), mean loss and
    sample count over every batch of ``data`` (``TensorData``, read ``batch_size`` at a time, or any
    iterable of batches, read once: a one-shot iterator will do). The model's mode is restored.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from deepslim.train.task import EmbeddingMatch
        >>> model = nn.Linear(3, 3)
        >>> batches = [torch.randn(4, 3)] * 2
        >>> round(evaluate_batches(model, batches, EmbeddingMatch("cosine", teacher=model))["cosine"], 4)
        1.0
    """
    dev = resolve_device(device)
    model.to(dev)
    if is_tensor_data(data):
        source, total_batches = BatchLoader(data, batch_size, device=dev), None
        first = first_batches(source)
    else:
        check_source(data)
        iterator = iter(data)
        first = list(itertools.islice(iterator, CHECKED_BATCHES))
        source, total_batches = itertools.chain(first, iterator), getattr(data, "__len__", lambda: None)()
    with eval_mode(model):
        check_batches(model, task, first)
        score_sum, loss_sum, n = 0, 0.0, 0
        with torch.inference_mode():
            for inputs, target in progress(on_device(source, dev), desc=desc, total=total_batches):
                outputs = call_model(model, inputs)
                reference = task.reference(inputs, target)
                loss_sum += task.loss(outputs, reference, reduction="sum").item()
                if task.metric_name is not None:
                    score_sum += task.scores(outputs, reference).sum().item()
                n += samples_in(inputs)
    result = {task.metric_name: metric_value(task, score_sum, n)} if task.metric_name is not None else {}
    return {**result, "loss": loss_sum / max(1, n), "n": n}
