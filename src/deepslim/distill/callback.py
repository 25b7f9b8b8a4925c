"""``Distillation``: the training-loop callback that adds the teacher's losses."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..core import DeepslimError
from ..core.inputs import call_model, check_inputs, move_inputs
from ..core.registry import near_matches
from ..train.callbacks import Callback
from ..train.task import Task, is_classification, primary_output
from .config import KD
from .losses import attention_loss, soft_loss


def _module(model: nn.Module, name: str, role: str) -> nn.Module:
    modules = dict(model.named_modules())
    if name not in modules:
        close = near_matches(name, [n for n in modules if n])
        raise DeepslimError(f"the {role} has no layer '{name}'",
                            hint=f"did you mean {', '.join(repr(c) for c in close)}?" if close
                            else "see `deepslim profile` for layer names")
    return modules[name]


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def make_adapter(student_shape: torch.Size, teacher_shape: torch.Size) -> nn.Module | None:
    """A learned map from the student's feature shape to the teacher's; ``None`` when they match."""
    if student_shape == teacher_shape:
        return None
    if len(student_shape) == 4 and len(teacher_shape) == 4:
        layers: list[nn.Module] = [nn.Conv2d(student_shape[1], teacher_shape[1], 1, bias=False)]
        if student_shape[2:] != teacher_shape[2:]:
            layers.append(nn.AdaptiveAvgPool2d(tuple(teacher_shape[2:])))
        return nn.Sequential(*layers)
    if len(student_shape) == len(teacher_shape) and student_shape[:-1] == teacher_shape[:-1]:
        return nn.Linear(student_shape[-1], teacher_shape[-1], bias=False)
    raise DeepslimError(f"cannot map student features of shape {tuple(student_shape)} to the teacher's "
                        f"{tuple(teacher_shape)}", hint="pair layers with the same kind of output (conv maps or vectors)")


class Distillation(Callback):
    """Adds KD (and hint) losses from a frozen ``teacher`` to a student's training.

    The teacher follows the student's device (it is moved there once the checks pass).

    ``example_inputs`` (a couple of samples, in any input form: tensor, tuple or dict) let it check
    the two models fit together before training. ``task`` (default: the trainer's) decides the
    teacher's term: for classification the soft-target KL on logits (Hinton et al.); for any other
    task its own loss against the teacher's outputs (e.g. ``EmbeddingMatch``: 1 - cosine or MSE
    to the teacher's embeddings). With ``KD.alpha > 0`` it can train the student alone, so the
    batches may come without targets (the label term is then dropped).

    Example:
        >>> import deepslim, torch
        >>> teacher, student = deepslim.create_model("resnet8"), deepslim.create_model("lenet5")
        >>> cb = Distillation(student, teacher, KD(hints={"3": "stages.1"}), torch.randn(2, 1, 28, 28))
        >>> len(cb.extra_parameters(None)) > 0   # a 1x1 adapter: the shapes differ
        True
    """

    def __init__(self, student: nn.Module, teacher: nn.Module, kd: KD, example_inputs, task: Task | None = None):
        if student is teacher:
            raise DeepslimError("the teacher and the student are the same model", hint="distil from a copy")
        if _device(student) != _device(teacher) and "meta" in (_device(student).type, _device(teacher).type):
            raise DeepslimError(f"the teacher is on {_device(teacher)} but the student on {_device(student)}",
                                hint="move both to one device (model.to(device)) before distilling")
        self.student, self.teacher, self.kd, self.task = student, teacher, kd, task
        pairs = {s: (_module(student, s, "student"), _module(teacher, t, "teacher")) for s, t in kd.hints.items()}
        check_inputs(student, example_inputs)
        check_inputs(teacher, example_inputs)
        shapes = self._probe(move_inputs(example_inputs, _device(student)), pairs)
        s_shape, t_shape = shapes["student_logits"], shapes["teacher_logits"]
        if task is None or is_classification(task):
            if s_shape[-1] != t_shape[-1]:
                raise DeepslimError(f"the teacher predicts {t_shape[-1]} classes but the student {s_shape[-1]}",
                                    hint="give the student the teacher's num_classes")
        elif s_shape != t_shape:
            raise DeepslimError(f"the teacher's outputs have shape {tuple(t_shape)} but the student's "
                                f"{tuple(s_shape)}", hint="give the student the teacher's output size "
                                                          "(e.g. a projection layer to the embedding width)")
        self.adapters = nn.ModuleDict()
        for s_name in pairs:
            s_shape, t_shape = shapes[s_name]
            if kd.hint_loss == "attention":
                if len(s_shape) != 4 or len(t_shape) != 4:
                    raise DeepslimError(f"attention transfer needs conv feature maps; '{s_name}' gives {tuple(s_shape)}")
                continue
            adapter = make_adapter(s_shape, t_shape)
            if adapter is not None:
                self.adapters[s_name.replace(".", "_")] = adapter.to(_device(student))
        self._pairs = pairs
        # The teacher follows the student's device, once every check has passed (a refusal moves nothing);
        # the probe above ran each model on its own device. A no-op when both are already together.
        teacher.to(_device(student))
        self._hooks: list = []
        self._features: dict[str, torch.Tensor] = {}
        self._cache: torch.Tensor | None = None
        self._teacher_flags: list[bool] = []
        self._task: Task | None = task

    @torch.no_grad()
    def _probe(self, x, pairs: dict) -> dict:
        found, hooks = {}, []

        def keep_shape(key):
            def hook(module, inputs, output):
                # returns None: a hook's return value would replace the output
                found.setdefault(key, primary_output(output).shape)
            return hook

        for s_name, (s_mod, t_mod) in pairs.items():
            hooks.append(s_mod.register_forward_hook(keep_shape(("s", s_name))))
            hooks.append(t_mod.register_forward_hook(keep_shape(("t", s_name))))
        s_mode, t_mode = self.student.training, self.teacher.training
        try:
            s_logits = primary_output(call_model(self.student.eval(), x))
            t_logits = primary_output(call_model(self.teacher.eval(), x))
        finally:
            self.student.train(s_mode)
            self.teacher.train(t_mode)
            for h in hooks:
                h.remove()
        shapes = {"student_logits": s_logits.shape, "teacher_logits": t_logits.shape}
        for s_name in pairs:
            shapes[s_name] = (found[("s", s_name)], found[("t", s_name)])
        return shapes

    @property
    def supplies_loss(self) -> bool:
        """The teacher's term can train the student alone: batches may come without targets."""
        return self.kd.alpha > 0

    def extra_parameters(self, trainer) -> list[nn.Parameter]:
        return list(self.adapters.parameters())

    def on_train_begin(self, trainer) -> None:
        if self.kd.cache_teacher and trainer.loader is None:  # before any change: a refusal leaves all as it was
            raise DeepslimError("teacher caching looks outputs up by sample index, which only TensorData has",
                                hint="cache_teacher=False for an iterable of batches")
        self._task = self.task if self.task is not None else trainer.task
        device = _device(self.student)
        self.teacher.to(device).eval()
        self.adapters.to(device)
        self._teacher_flags = [p.requires_grad for p in self.teacher.parameters()]
        self.teacher.requires_grad_(False)
        trainer.label_loss_weight = 1.0 - self.kd.alpha
        if self.kd.cache_teacher:
            if trainer.config.augment:
                raise DeepslimError("teacher caching needs fixed inputs, but training augments them",
                                    hint="turn augmentation off (augment=False) or cache_teacher=False")
            self._cache = None
        for s_name, (s_mod, t_mod) in self._pairs.items():
            self._hooks.append(s_mod.register_forward_hook(self._keep(("s", s_name))))
            self._hooks.append(t_mod.register_forward_hook(self._keep(("t", s_name))))

    def _keep(self, key):
        def hook(module, inputs, output):
            # A copy: an in-place activation right after the layer (ReLU(inplace=True)) would
            # otherwise rewrite what we keep; gradients still flow through the copy.
            self._features[key] = primary_output(output).clone()
        return hook

    def _teacher_logits(self, trainer, inputs) -> torch.Tensor:
        use_cache = self.kd.cache_teacher and not self._pairs and trainer.loader is not None
        if use_cache:
            idx = trainer.loader.batch_indices
            if self._cache is None:
                self._cache = torch.full((len(trainer.loader.data), 0), float("nan"))
            if self._cache.shape[1] and not torch.isnan(self._cache[idx, 0]).any():
                return self._cache[idx].to(_device(self.student))
        with torch.inference_mode():
            logits = primary_output(call_model(self.teacher, inputs))
        logits = logits.clone()  # a normal tensor: inference tensors cannot take part in backward
        if use_cache:
            if self._cache.shape[1] == 0:
                self._cache = torch.full((len(trainer.loader.data), logits.shape[1]), float("nan"))
            self._cache[idx] = logits.detach().float().cpu()
        return logits

    def extra_loss(self, trainer, inputs, outputs, targets):
        teacher_logits = self._teacher_logits(trainer, inputs)
        if self._task is None or is_classification(self._task):
            loss = self.kd.alpha * soft_loss(primary_output(outputs), teacher_logits, self.kd.temperature)
        else:  # the task's own distance to the teacher's outputs (e.g. 1 - cosine between embeddings)
            loss = self.kd.alpha * self._task.loss(outputs, teacher_logits)
        for s_name in self._pairs:
            student_features = self._features.pop(("s", s_name))
            teacher_features = self._features.pop(("t", s_name)).clone()
            if self.kd.hint_loss == "attention":
                term = attention_loss(student_features, teacher_features)
            else:
                adapter = self.adapters[s_name.replace(".", "_")] if s_name.replace(".", "_") in self.adapters else None
                term = F.mse_loss(adapter(student_features) if adapter is not None else student_features,
                                  teacher_features)
            loss = loss + self.kd.hint_weight * term
        return loss

    def on_train_end(self, trainer) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._features.clear()
        for p, flag in zip(self.teacher.parameters(), self._teacher_flags):
            p.requires_grad_(flag)
        trainer.label_loss_weight = 1.0
