"""Tasks: how a batch's model outputs and target become a loss and a metric.

Training, evaluation and distillation take a ``task`` so that models other than image
classifiers are trained and judged by what matters for them:

- ``Classification()`` (the default): cross-entropy (with ``TrainConfig.label_smoothing`` in
  training) and top-1 accuracy in percent;
- ``EmbeddingMatch(metric="cosine" | "mse", teacher=None)``: an embedding model judged by the
  cosine similarity (loss ``1 - cos``) or the mean squared error to a target embedding (the
  batch's target) or, when ``teacher`` is given, to the teacher's output for the same inputs;
- ``loss_fn=`` / ``metric=`` callables, for anything else (see ``resolve_task``).

A metric is the mean over every sample of per-sample scores, so a split's figure does not
depend on how it was cut into batches.

Example:
    >>> import torch
    >>> task = EmbeddingMatch("cosine")
    >>> a = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    >>> task.scores(a, a).tolist(), task.loss(a, -a).item()
    ([1.0, 1.0], 2.0)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..core import DeepslimError, eval_mode
from ..core.inputs import call_model, output_tensors, tensors, to_device

METRICS = ("cosine", "mse")
TASK_HINT = "pass task=EmbeddingMatch(...) for embeddings, or loss_fn=/metric= callables for other tasks"


def primary_output(outputs) -> torch.Tensor:
    """The tensor a task judges: the output itself, else the first tensor the model returned (the first
    element of a tuple, the first value of a dict such as a Hugging Face ``ModelOutput``'s ``logits``)."""
    if isinstance(outputs, torch.Tensor):
        return outputs
    return output_tensors(outputs)[0]


class Task:
    """Base class. Subclasses set ``metric_name`` and implement ``loss`` and ``scores``.

    ``needs_target``: whether batches must carry a target (``(inputs, target)``). ``scale``
    multiplies the mean score (100 for accuracy in percent). ``higher_is_better`` says which
    way the metric improves.
    """

    metric_name: str | None = "metric"
    needs_target = True
    higher_is_better = True
    scale = 1.0

    def reference(self, inputs, target):
        """What the outputs are compared with: the batch's target (a teacher's output for some tasks)."""
        return target

    def loss(self, outputs, target, *, reduction: str = "mean", label_smoothing: float = 0.0) -> torch.Tensor:
        """The training loss; ``reduction="sum"`` sums per-sample losses (for means over a whole split)."""
        raise NotImplementedError

    def scores(self, outputs, target) -> torch.Tensor:
        """Per-sample scores (shape ``(batch,)``) whose mean, times ``scale``, is the metric."""
        raise NotImplementedError

    def check(self, outputs, target) -> None:
        """Refuse outputs/targets this task cannot judge, with a one-line error (called on a first batch)."""


class Classification(Task):
    """Cross-entropy on logits ``(batch, classes)`` against integer labels ``(batch,)``; top-1 accuracy (%).

    ``label_smoothing=None`` takes ``TrainConfig.label_smoothing``; evaluation never smooths.

    Example:
        >>> import torch
        >>> Classification().scores(torch.tensor([[2.0, 1.0], [0.0, 3.0]]), torch.tensor([0, 0])).tolist()
        [True, False]
    """

    metric_name = "accuracy"
    scale = 100.0

    def __init__(self, label_smoothing: float | None = None):
        if label_smoothing is not None and not 0.0 <= label_smoothing < 1.0:
            raise DeepslimError(f"Classification.label_smoothing must be in [0, 1), got {label_smoothing}")
        self.label_smoothing = label_smoothing

    def loss(self, outputs, target, *, reduction="mean", label_smoothing=0.0):
        smoothing = label_smoothing if self.label_smoothing is None else self.label_smoothing
        if reduction == "sum":  # evaluation: the plain cross-entropy, as deepslim always reported it
            return F.cross_entropy(primary_output(outputs), target, reduction="sum")
        return F.cross_entropy(primary_output(outputs), target, label_smoothing=smoothing)

    def scores(self, outputs, target):
        return primary_output(outputs).argmax(1) == target

    def check(self, outputs, target) -> None:
        logits = primary_output(outputs)
        if logits.ndim != 2:
            raise DeepslimError(f"the model returned a tensor of shape {tuple(logits.shape)}, but classification "
                                "needs logits (batch, classes)", hint=TASK_HINT)
        if not isinstance(target, torch.Tensor) or target.dtype.is_floating_point or target.dtype == torch.bool \
                or target.ndim != 1 or len(target) != len(logits):
            kind = (f"a {target.dtype} tensor of shape {tuple(target.shape)}" if isinstance(target, torch.Tensor)
                    else type(target).__name__)
            raise DeepslimError(f"classification needs integer class labels of shape ({len(logits)},), got {kind}",
                                hint=TASK_HINT)

    def __repr__(self) -> str:
        return "Classification()" if self.label_smoothing is None else \
            f"Classification(label_smoothing={self.label_smoothing})"


class EmbeddingMatch(Task):
    """An embedding model judged by cosine similarity or MSE to a target embedding or a teacher's output.

    Outputs and references are ``(batch, ..., features)``. ``cosine``: the metric is the mean cosine
    similarity (over the last dimension, averaged over any middle ones), the loss ``1 - cosine``.
    ``mse``: the metric and the loss are the per-sample mean squared error (lower is better).
    With ``teacher``, each batch's reference is the teacher's output for the same inputs (computed
    in eval mode without gradients; the teacher's mode is restored), and batches need no target.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> teacher = nn.Linear(4, 3)
        >>> task = EmbeddingMatch("mse", teacher=teacher)
        >>> x = torch.randn(5, 4)
        >>> with torch.no_grad():
        ...     float(task.scores(teacher(x), task.reference(x, None)).max())
        0.0
    """

    def __init__(self, metric: str = "cosine", teacher: nn.Module | None = None):
        if metric not in METRICS:
            raise DeepslimError(f"EmbeddingMatch.metric must be one of {', '.join(METRICS)}, got {metric!r}")
        self.metric_name = metric
        self.higher_is_better = metric == "cosine"
        self.teacher = teacher
        self.needs_target = teacher is None

    def against(self, teacher: nn.Module) -> "EmbeddingMatch":
        """The same task judged against ``teacher``'s outputs."""
        return EmbeddingMatch(self.metric_name, teacher)

    def reference(self, inputs, target):
        if self.teacher is None:
            return target
        with eval_mode(self.teacher), torch.no_grad():  # not inference_mode: the result joins the student's backward
            reference = primary_output(call_model(self.teacher, inputs))
        given = tensors(inputs)  # back where the inputs are (the student's device): a metric may compare them
        return to_device(reference, given[0].device) if given else reference

    def _per_sample(self, outputs, target) -> torch.Tensor:
        out = primary_output(outputs)
        ref = primary_output(target).to(out.device, out.dtype)
        if self.metric_name == "cosine":
            cos = F.cosine_similarity(out, ref, dim=-1)
            return cos.reshape(len(cos), -1).mean(1) if cos.ndim > 1 else cos
        return (out - ref).pow(2).reshape(len(out), -1).mean(1)

    def loss(self, outputs, target, *, reduction="mean", label_smoothing=0.0):
        per_sample = self._per_sample(outputs, target)
        if self.metric_name == "cosine":
            per_sample = 1.0 - per_sample
        return per_sample.sum() if reduction == "sum" else per_sample.mean()

    def scores(self, outputs, target):
        return self._per_sample(outputs, target)

    def check(self, outputs, target) -> None:
        out = primary_output(outputs)
        try:
            ref = primary_output(target)
        except DeepslimError:
            raise DeepslimError(f"EmbeddingMatch compares with a target embedding, got {type(target).__name__}",
                                hint="yield (inputs, target_embedding) batches, or give EmbeddingMatch a teacher") \
                from None
        if out.shape != ref.shape:
            raise DeepslimError(f"the model's embeddings have shape {tuple(out.shape)} but the "
                                f"{'teacher' if self.teacher is not None else 'target'}'s {tuple(ref.shape)}",
                                hint="compare embeddings of the same size (add a projection layer to the model)")
        if not out.is_floating_point():
            raise DeepslimError(f"EmbeddingMatch needs floating-point embeddings, the model returned {out.dtype}")

    def __repr__(self) -> str:
        return f"EmbeddingMatch({self.metric_name!r}{', teacher=...' if self.teacher is not None else ''})"


class FunctionTask(Task):
    """A task from callables: ``loss_fn(outputs, target) -> scalar`` (the batch mean) and optionally
    ``metric(outputs, target) -> per-sample scores or the batch mean``; see ``resolve_task``."""

    def __init__(self, loss_fn: Callable | None = None, metric: Callable | None = None, base: Task | None = None):
        for name, fn in (("loss_fn", loss_fn), ("metric", metric)):
            if fn is not None and not callable(fn):
                raise DeepslimError(f"{name} must be a callable (outputs, target) -> tensor, got {type(fn).__name__}")
        self.loss_fn, self.metric_fn, self.base = loss_fn, metric, base
        if metric is not None:
            name = getattr(metric, "__name__", "metric")
            self.metric_name = "metric" if name == "<lambda>" else name
            self.scale = 1.0
        elif base is not None:
            self.metric_name, self.scale, self.higher_is_better = base.metric_name, base.scale, base.higher_is_better
        else:
            self.metric_name = None  # only the loss is reported
        self.needs_target = base.needs_target if base is not None else True

    def reference(self, inputs, target):
        return self.base.reference(inputs, target) if self.base is not None else target

    def loss(self, outputs, target, *, reduction="mean", label_smoothing=0.0):
        if self.loss_fn is None:
            return self.base.loss(outputs, target, reduction=reduction, label_smoothing=label_smoothing)
        value = self.loss_fn(outputs, target)
        return value * _batch_of(outputs) if reduction == "sum" else value

    def scores(self, outputs, target):
        if self.metric_fn is None:
            return self.base.scores(outputs, target)
        value = torch.as_tensor(self.metric_fn(outputs, target)).detach()
        n = _batch_of(outputs)
        if value.ndim == 0:  # the batch mean: spread it over the samples so the split mean stays exact
            return value.float().expand(n)
        if value.ndim != 1 or len(value) != n:
            raise DeepslimError(f"metric returned a tensor of shape {tuple(value.shape)}; expected per-sample scores "
                                f"({n},) or one number for the batch")
        return value

    def check(self, outputs, target) -> None:
        if self.base is not None and (self.loss_fn is None or self.metric_fn is None):
            self.base.check(outputs, target)

    def __repr__(self) -> str:
        return f"FunctionTask(loss_fn={self.loss_fn!r}, metric={self.metric_fn!r}, base={self.base!r})"


def is_classification(task: Task) -> bool:
    """Whether ``task`` judges class logits (so distillation uses soft targets on them)."""
    return isinstance(task, Classification) or isinstance(task, FunctionTask) and isinstance(task.base, Classification)


def _batch_of(outputs) -> int:
    return len(primary_output(outputs))


def resolve_task(task: Task | None = None, loss_fn: Callable | None = None, metric: Callable | None = None) -> Task:
    """The task a verb runs: ``task`` (default ``Classification()``), with ``loss_fn``/``metric`` replacing
    its loss/metric. ``loss_fn`` alone (no task) reports only the loss.

    Example:
        >>> import torch.nn.functional as F
        >>> resolve_task().metric_name, resolve_task(loss_fn=F.mse_loss).metric_name
        ('accuracy', None)
    """
    if task is not None and not isinstance(task, Task):
        raise DeepslimError(f"task must be a deepslim Task (Classification(), EmbeddingMatch(...)), "
                            f"got {type(task).__name__}", hint="pass loss_fn=/metric= for a task given as functions")
    if loss_fn is None and metric is None:
        return task if task is not None else Classification()
    if task is None and loss_fn is None:
        task = Classification()  # a metric alone replaces accuracy; the loss stays cross-entropy
    return FunctionTask(loss_fn, metric, task)


def metric_value(task: Task, total: Any, n: int) -> float:
    """The metric over a split from the sum of its per-sample scores."""
    return task.scale * total / max(1, n)
