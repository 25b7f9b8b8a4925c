"""A small training loop with callbacks, per-epoch checkpoints and exact resume."""

from __future__ import annotations

import math
import time
from pathlib import Path

import torch
from torch import nn

from ..core import DeepslimError, log, progress, resolve_device, seed_everything
from ..core.inputs import batch_size as samples_in
from ..core.inputs import call_model
from ..core.seed import deterministic_algorithms
from ..core.text import plural
from ..data import Augment, BatchLoader, TensorData
from . import distributed
from .batches import check_batches, check_source, count_batches, first_batches, is_tensor_data, on_device
from .callbacks import Callback, CallbackList
from .checkpoint import load_checkpoint, save_checkpoint
from .config import TrainConfig
from .evaluate import check_input_shape, evaluate
from .schedules import lr_at
from .task import Classification, Task, metric_value, resolve_task


def make_optimizer(model: nn.Module, cfg: TrainConfig, extra_parameters=()) -> torch.optim.Optimizer:
    """SGD or AdamW; no weight decay on biases and normalisation parameters (ndim <= 1).

    ``extra_parameters`` (e.g. distillation adapters) are trained alongside the model's.
    """
    params = [*model.parameters(), *extra_parameters]
    decay = [p for p in params if p.requires_grad and p.ndim > 1]
    no_decay = [p for p in params if p.requires_grad and p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)
    return torch.optim.AdamW(groups, lr=cfg.lr)


class Trainer:
    """Trains ``model`` on ``train_data`` per ``config``.

    ``train_data`` is ``TensorData`` (shuffled per (seed, epoch), augmented per ``config``, the last
    partial batch dropped) or any re-iterable source of batches, each ``inputs`` or ``(inputs, target)``
    with ``inputs`` a tensor, a tuple or a dict (see ``train.batches``): a list, a ``DataLoader``. Such
    batches are used as given (no augmentation; shuffling is the source's business, and its
    ``set_epoch(epoch)`` is called each epoch if it has one) and moved to the model's device.
    ``task`` (default ``Classification()``), or ``loss_fn=``/``metric=``, turns outputs into the loss
    and the ``train_``/``val_`` metric of the history (``train.task``).

    ``checkpoint_path`` gets the full training state after every epoch; with
    ``resume=True`` training continues from it, seeing the same batches it would have. With an
    iterable source, resume is by epochs only: the resumed epochs see what the source yields then.
    Training runs with PyTorch's deterministic algorithms (see ``deterministic_algorithms``);
    the model's initial weights are the caller's to seed (``seed_everything`` before creating it).

    Example:
        >>> from deepslim import create_model, load_dataset
        >>> data = load_dataset("synthetic", subset=256)
        >>> trainer = Trainer(create_model("lenet5"), TrainConfig(epochs=1, lr=0.05))
        >>> history = trainer.fit(data.train, val_data=data.val)
    """

    def __init__(self, model: nn.Module, config: TrainConfig | None = None, *, callbacks: list[Callback] = (),
                 device="auto", task: Task | None = None, loss_fn=None, metric=None):
        self.model = model
        self.config = config or TrainConfig()
        self.callbacks = CallbackList(callbacks)
        self.device = resolve_device(device)
        self.task = resolve_task(task, loss_fn, metric)
        self.val_task: Task | None = None  # what validation measures, when not ``task`` (see ``distill``)
        self.optimizer: torch.optim.Optimizer | None = None
        self.epoch = 0
        self.global_step = 0
        self.total_steps = 0
        self.history: list[dict] = []
        self.stop_training = False
        self.label_loss_weight = 1.0  # weight of the cross-entropy on labels; distillation lowers it
        self.loader: BatchLoader | None = None  # None for an iterable source (no sample indices)
        self.epochs_saved = 0  # epochs in the checkpoint on disk: what a resume after an interruption gets back

    def _loader(self, data: TensorData) -> BatchLoader:
        cfg = self.config
        augment = Augment(cfg.flip, cfg.crop_padding) if cfg.augment else None
        return BatchLoader(data, cfg.batch_size, shuffle=True, augment=augment, seed=cfg.seed, drop_last=True,
                           device=self.device)

    def fit(self, train_data, *, val_data=None, checkpoint_path: str | Path | None = None,
            resume: bool = False) -> list[dict]:
        """Train for ``config.epochs`` epochs; returns the history (one dict of metrics per epoch)."""
        with deterministic_algorithms(), distributed.quiet_unless_main():
            return self._fit(train_data, val_data, checkpoint_path, resume)

    def _fit(self, train_data, val_data, checkpoint_path: str | Path | None, resume: bool) -> list[dict]:
        cfg, task = self.config, self.task
        seed_everything(cfg.seed)
        self.model.to(self.device)
        tensor_data = is_tensor_data(train_data)
        if tensor_data and type(task) is Classification:  # images: the checks (and messages) they always had
            check_input_shape(self.model.eval(), train_data.images[:2].to(self.device))
        elif tensor_data:
            check_batches(self.model, task, [(train_data.images[:2], train_data.labels[:2])])
        else:
            check_source(train_data, "training data", reiterable=True)
            check_batches(self.model, task, first_batches(train_data), target_optional=self.callbacks.supplies_loss)
        self.optimizer = make_optimizer(self.model, cfg, self.callbacks.extra_parameters(self))
        # Several processes (DDP, see train.distributed): each takes its share of every global batch and
        # gradients are averaged in backward. One process takes none of these branches.
        ddp = distributed.world_size() > 1
        if ddp and self.callbacks.extra_parameters(self):  # DDP would not average their gradients
            raise DeepslimError("multi-process training cannot train parameters outside the model (distillation "
                                "adapters)", hint="train in one process, or distill without adapters")
        if tensor_data:
            loader = self.loader = self._loader(train_data)
            if ddp:
                loader = self.loader = distributed.ShardedLoader(loader)
            steps = len(loader)
        else:
            loader, self.loader, steps = None, None, count_batches(train_data)
        if steps == 0:
            raise DeepslimError(f"the training split has {plural(len(train_data), 'sample')}, fewer than one batch "
                                f"of {cfg.batch_size}", hint="lower --batch-size or raise --subset")
        forward = distributed.wrap(self.model, self.device) if ddp else self.model
        self.total_steps = cfg.epochs * steps
        warmup = int(cfg.warmup_epochs * steps)
        start_epoch = 0
        ckpt = Path(checkpoint_path) if checkpoint_path else None
        if resume:
            if ckpt is None or not ckpt.is_file():
                raise DeepslimError(f"nothing to resume: no checkpoint at {ckpt}")
            start_epoch = self.epochs_saved = self._restore(load_checkpoint(ckpt))
            log(f"resuming at epoch {start_epoch + 1}/{cfg.epochs}")
        self.callbacks.on_train_begin(self)
        for epoch in range(start_epoch, cfg.epochs):
            self.epoch = epoch
            if tensor_data:
                loader.set_epoch(epoch)
            elif hasattr(train_data, "set_epoch"):
                train_data.set_epoch(epoch)
            self.model.train()
            self.callbacks.on_epoch_begin(self, epoch)
            started, loss_sum, score_sum, judged, seen = time.perf_counter(), 0.0, 0, 0, 0
            batches = loader if tensor_data else on_device(train_data, self.device)
            bar = progress(batches, desc=f"epoch {epoch + 1}/{cfg.epochs}", total=steps)
            for inputs, target in bar:
                for group in self.optimizer.param_groups:
                    group["lr"] = lr_at(self.global_step, self.total_steps, cfg.lr, cfg.schedule, warmup)
                self.callbacks.on_step_begin(self, self.global_step)
                outputs = call_model(forward, inputs)
                reference = task.reference(inputs, target)
                loss = None if reference is None else \
                    self.label_loss_weight * task.loss(outputs, reference, label_smoothing=cfg.label_smoothing)
                extra = self.callbacks.extra_loss(self, inputs, outputs, target)
                if extra is not None:
                    loss = extra if loss is None else loss + extra
                if loss is None:
                    raise DeepslimError("a batch has no target and no callback gave a loss",
                                        hint="yield (inputs, target) batches")
                if not math.isfinite(loss.item()):
                    raise DeepslimError(f"the loss became {loss.item()} at epoch {epoch + 1}",
                                        hint="lower the learning rate (--lr)")
                self.optimizer.zero_grad(set_to_none=True)
                loss.backward()
                self.callbacks.after_backward(self)
                if cfg.grad_clip:
                    nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
                self.optimizer.step()
                self.callbacks.after_step(self)
                self.global_step += 1
                n = samples_in(inputs)
                loss_sum += loss.item() * n
                seen += n
                if reference is not None and task.metric_name is not None:
                    with torch.no_grad():
                        score_sum += task.scores(outputs, reference).sum().item()
                    judged += n
                if not getattr(bar, "disable", True):  # running figures on a terminal's bar; nothing otherwise
                    bar.set_postfix(loss=f"{loss_sum / seen:.4f}", refresh=False,
                                    **({"train": _format_metric(task, metric_value(task, score_sum, judged))}
                                       if judged else {}))
                self.callbacks.on_step_end(self, self.global_step, loss.item())
                if self.stop_training:
                    break
            if ddp:  # the epoch's figures over the whole global batches, as one process reports them
                loss_sum, score_sum, judged, seen = distributed.sum_over_ranks(loss_sum, score_sum, judged, seen,
                                                                               device=self.device)
            metrics = {"epoch": epoch + 1, "train_loss": loss_sum / max(1, seen)}
            if judged:
                metrics[f"train_{task.metric_name}"] = metric_value(task, score_sum, judged)
            metrics.update(lr=self.optimizer.param_groups[0]["lr"], seconds=time.perf_counter() - started)
            if val_data is not None and _has_samples(val_data):
                val = evaluate(self.model, val_data, batch_size=cfg.eval_batch_size, device=self.device,
                               desc="val", task=self.val_task or task)
                metrics.update({f"val_{k}": v for k, v in val.items() if k != "n"})
            self.history.append(metrics)
            self.callbacks.on_epoch_end(self, epoch, metrics)
            log(_format_epoch(metrics, cfg.epochs))
            if ckpt is not None and distributed.is_main():  # every rank holds the same state; one writes it
                save_checkpoint(ckpt, self._state(epoch + 1))
                self.epochs_saved = epoch + 1
            if self.stop_training:
                break
        self.callbacks.on_train_end(self)
        self.model.eval()
        return self.history

    def _state(self, epochs_done: int) -> dict:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "epochs_done": epochs_done, "global_step": self.global_step, "history": self.history,
                 "config": self.config.to_dict(), "torch_rng": torch.get_rng_state()}
        if self.device.type == "cuda":  # dropout on the GPU draws from the CUDA generator: resume must restore it
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def _restore(self, state: dict) -> int:
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            saved_cfg = state["config"]
            epochs_done, self.global_step = int(state["epochs_done"]), int(state["global_step"])
            self.history = list(state["history"])
            torch.set_rng_state(state["torch_rng"])
            if "cuda_rng" in state and self.device.type == "cuda":  # loaded to the CPU, as set_rng_state wants
                torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        except (KeyError, RuntimeError, ValueError) as exc:
            raise DeepslimError(f"the checkpoint does not match this model or run: {str(exc).splitlines()[0]}",
                                hint="resume with the same model and options, or start again with --overwrite") from exc
        mine = self.config.to_dict()
        changed = [k for k in mine if k not in ("epochs",) and saved_cfg.get(k) != mine[k]]
        if changed:
            raise DeepslimError(f"cannot resume: training options changed ({', '.join(changed)})",
                                hint="resume with the options of the interrupted run")
        if saved_cfg.get("epochs") != mine["epochs"]:
            raise DeepslimError(f"cannot resume: the run was for {plural(saved_cfg.get('epochs') or 0, 'epoch')}, "
                                f"not {mine['epochs']}",
                                hint="the learning-rate schedule depends on the epoch count; keep it the same")
        return epochs_done


def _has_samples(data) -> bool:
    try:
        return len(data) > 0
    except TypeError:  # an iterable without a length: evaluation finds out
        return True


def _format_metric(task: Task, value: float) -> str:
    return f"{value:.2f}%" if task.metric_name == "accuracy" else f"{task.metric_name} {value:.4f}"


def _format_epoch(m: dict, epochs: int) -> str:
    """One log line; accuracy as always (``train 91.20%``), other metrics named (``train cosine 0.9130``)."""
    def figure(prefix: str) -> str:
        key = next((k for k in m if k.startswith(prefix) and k != prefix + "loss"), None)
        if key is None:
            return ""
        name = key[len(prefix):]
        return f"  {prefix[:-1]} " + (f"{m[key]:.2f}%" if name == "accuracy" else f"{name} {m[key]:.4f}")

    text = f"epoch {m['epoch']}/{epochs}  loss {m['train_loss']:.4f}{figure('train_')}  lr {m['lr']:.4g}  " \
           f"{m['seconds']:.0f}s"
    if "val_loss" in m:
        text += figure("val_") or f"  val loss {m['val_loss']:.4f}"
    return text


def train(model: nn.Module, train_data, config: TrainConfig | None = None, **kwargs) -> list[dict]:
    """Shorthand for ``Trainer(model, config, ...).fit(train_data, ...)``."""
    fit_keys = ("val_data", "checkpoint_path", "resume")
    fit_kwargs = {k: kwargs.pop(k) for k in fit_keys if k in kwargs}
    return Trainer(model, config, **kwargs).fit(train_data, **fit_kwargs)
