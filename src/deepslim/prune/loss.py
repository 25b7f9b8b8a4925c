"""The loss that greedy depth removal (layer and block dropping) minimises, measured on a few batches.

Written here rather than taken from a library: the greedy rounds need one number per candidate model,
for any input form (tensor, tuple, dict) and any task (classification, embedding match, or closeness
to the unpruned model's outputs when there are no targets).
"""

from __future__ import annotations

import torch
from torch import nn

from ..core import DeepslimError
from ..core.inputs import call_model, check_same_structure, model_device, move_inputs, output_tensors, split_batch
from .structured import _one_batch


class DataLoss:
    """The summed loss of the model over the batches (per-sample sums, so batch sizes weigh right).

    ``owner`` names the method in errors (``"BlockDropping"``). Without targets and without a task, the
    loss is the mean squared distance to the outputs the model gave when this object was made.

    Example:
        >>> import torch
        >>> model = torch.nn.Linear(4, 3)
        >>> loss = DataLoss(model, [(torch.randn(8, 4), torch.randint(0, 3, (8,)))], None, None)
        >>> loss() > 0
        True
    """

    def __init__(self, model: nn.Module, data, example_inputs, task, *, owner: str = "LayerDropping"):
        if data is None and example_inputs is None:
            raise DeepslimError(f"{owner} needs data or example_inputs to measure a loss",
                                hint="pass data=[(inputs, target), ...] (validation batches)")
        # without data: the example alone, as inputs with no target (a tuple example is positional inputs)
        batches = [data] if _one_batch(data) else list(data) if data is not None else [(example_inputs, None)]
        if not batches:
            raise DeepslimError(f"{owner} got no data batches", hint="pass data=[(inputs, target), ...]")
        check_same_structure(batches)
        device = model_device(model)  # targets follow the model (inputs are moved when it is called)
        self.batches = [(x, None if t is None else move_inputs(t, device)) for x, t in map(split_batch, batches)]
        has_targets = all(t is not None for _, t in self.batches)
        if task is None and has_targets:
            from ..train.task import Classification

            task = Classification()
        if task is not None and task.needs_target and not has_targets:
            raise DeepslimError(f"{owner}'s loss needs targets, and the data has none",
                                hint="pass data=[(inputs, target), ...], a task with a teacher, or no task (outputs "
                                     "are then compared with the unpruned model's)")
        self.model, self.task = model, task
        with torch.no_grad():  # once: a teacher's outputs do not change while candidates are tried
            if task is None:  # no targets, no task: stay close to what the unpruned model returns
                self.references = [[t.detach() for t in output_tensors(call_model(model, x))]
                                   for x, _ in self.batches]
            else:
                self.references = [task.reference(x, t) for x, t in self.batches]

    @torch.no_grad()
    def __call__(self) -> float:
        total = 0.0
        for i, (inputs, target) in enumerate(self.batches):
            outputs = call_model(self.model, inputs)
            if self.task is None:
                total += sum(float((o.float() - r.float()).pow(2).mean()) * len(o)
                             for o, r in zip(output_tensors(outputs), self.references[i]))
            else:
                if i == 0:
                    self.task.check(outputs, self.references[i])
                total += float(self.task.loss(outputs, self.references[i], reduction="sum"))
        return total
