"""What a compress run needs to know about its task: image classification or text retrieval.

The runner asks the task, never the data, for: the example input (export, pruning, MAC counts),
calibration images, the batches a pruning criterion probes, how a model and an ONNX file score,
the latency inputs per batch size, and how a stage fine-tunes. The scores keep the key
``accuracy`` (the stage tables, targets and headlines read it); a retrieval run's ``accuracy`` is
its recall@1 and ``metrics["task"]`` says so.

- ``ImageTask``: accuracy on every test image; latency of one image at batch 1 and 64; fine-tunes
  train on the labelled training split (optionally distilled from the input model).
- ``RetrievalTask`` (``debian-descriptions``, a ``SentenceEmbedder``): recall@1/@10 and MRR over
  the whole test split, each query against every test document; latency at batch 1 is one real
  query at its own length (the median), at batch 32 the longest of 32 real long descriptions,
  repeated (so the shape of 32 descriptions padded together), at most 128 tokens; fine-tunes
  distil the student's embedding towards the input model's on the training split's texts (no
  labels), the teacher's embeddings computed once per run.

Example:
    >>> task = task_for(deepslim.load_dataset("synthetic"), model, torch.device("cpu"))   # doctest: +SKIP
    >>> task.kind, task.batch_sizes
    ('classification', (1, 64))
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..core import DeepslimError, log
from ..core.inputs import move_inputs
from ..core.text import plural
from ..distill import KD, Distillation
from ..export.onnx import evaluate_onnx, export_onnx
from ..profiling.counting import count_ops
from ..train import TrainConfig, Trainer
from ..train.evaluate import evaluate
from ..train.task import EmbeddingMatch
from .techniques import TECHNIQUES

DOC_MAX_TOKENS = 128  # issue 16: batch 32 is real long descriptions padded to their longest, at most 128 tokens


class ImageTask:
    """Classification on ``DataSplits`` of images (every run before text runs existed)."""

    kind, metric, batch_sizes = "classification", "accuracy", (1, 64)

    def __init__(self, data, device: torch.device):
        self.data, self.device = data, device
        self.example = data.test.images[:1].to(device)
        self.calibration = data.train.images[:2048]

    def record(self) -> dict:
        subset = (getattr(self.data, "options", None) or {}).get("subset")
        return {"name": self.data.name, "subset": subset, "train_images": len(self.data.train),
                "val_images": len(self.data.val), "test_images": len(self.data.test),
                "calibration_images": len(self.calibration), "unit": "image"}

    def check_stage(self, stage) -> None:
        """Refuse, before any work, a stage setting this task cannot honour (none for images)."""

    def int8_calibration(self, size: int):
        return self.calibration

    def calibration_samples(self, size: int) -> tuple[int, str]:
        return min(len(self.calibration), size), "image"

    def probe(self) -> tuple:
        """What a pruning criterion that needs data (Taylor importance) looks at."""
        return self.data.train.images[:64].to(self.device), self.data.train.labels[:64].to(self.device)

    def probe_task(self, teacher: nn.Module):
        return None  # the model's own classification loss

    def latency_cases(self) -> list[tuple[int, torch.Tensor]]:
        one = self.example[:1].cpu()
        return [(b, one) for b in self.batch_sizes]

    def macs(self, model: nn.Module) -> int:
        return count_ops(model.eval().cpu(), (self.example.cpu(),)).macs

    def export(self, model: nn.Module, path: Path) -> None:
        export_onnx(model.cpu().eval(), path, self.example.cpu())

    def score(self, model: nn.Module, device) -> dict:
        return {"accuracy": evaluate(model, self.data.test, device=device or "cpu", desc="test")["accuracy"]}

    def score_onnx(self, path: Path) -> dict:
        return {"accuracy": evaluate_onnx(path, self.data.test)["accuracy"]}

    def finetune(self, target: nn.Module, teacher: nn.Module, ft, callbacks: list) -> None:
        if ft.distill:
            kd = KD(temperature=ft.temperature, alpha=ft.alpha)
            callbacks = [*callbacks, Distillation(target.to(self.device), teacher.to(self.device), kd,
                                                  self.example.repeat(2, 1, 1, 1))]
        cfg = TrainConfig(epochs=ft.epochs, lr=ft.lr, batch_size=ft.batch_size, schedule="cosine", seed=ft.seed)
        Trainer(target, cfg, callbacks=callbacks, device=self.device).fit(self.data.train, val_data=self.data.val)

    def describe_finetune(self) -> str:
        return plural(len(self.data.train), "training image")


class RetrievalTask:
    """Query-to-document retrieval on ``TextSplits`` with a ``SentenceEmbedder`` (its tokenizer tokenizes)."""

    kind, metric, batch_sizes = "retrieval", "recall@1", (1, 32)

    def __init__(self, data, model: nn.Module, device: torch.device):
        from ..text import tokenize

        self.data, self.device, self._tokenize = data, device, tokenize
        self.tokenizer_model = model  # every student keeps the teacher's tokenizer
        self.calibration = None       # no BatchNorm to re-estimate; int8 here is dynamic (no calibration)
        queries = list(data.test.queries)
        lengths = [int(tokenize(model, [q])["attention_mask"].sum()) for q in queries[:512]]
        median = sorted(range(len(lengths)), key=lengths.__getitem__)[len(lengths) // 2]
        self.query = tokenize(model, [queries[median]])
        docs = list(data.test.documents[:32])
        padded = tokenize(model, docs, max_length=DOC_MAX_TOKENS)
        longest = int(padded["attention_mask"].sum(1).argmax())
        self.document = tokenize(model, [docs[longest]], max_length=DOC_MAX_TOKENS)
        self.example = move_inputs(self.query, device)
        self._targets = None

    def record(self) -> dict:
        subset = (getattr(self.data, "options", None) or {}).get("subset")
        # the image-named counts (read by logs, reports and model cards) count text pairs here, as `unit` says
        return {"name": self.data.name, "subset": subset, "train_images": len(self.data.train),
                "val_images": len(self.data.val), "test_images": len(self.data.test), "calibration_images": 0,
                "unit": "text pair", "train_texts": 2 * len(self.data.train),
                "latency_tokens": {"1": self.query["input_ids"].shape[1], "32": self.document["input_ids"].shape[1]}}

    def _texts(self, pairs, n: int | None = None) -> list[str]:
        queries, documents = list(pairs.queries), list(pairs.documents)
        if n is not None:
            queries, documents = queries[:n // 2], documents[:n // 2]
        return queries + documents

    def check_stage(self, stage) -> None:
        """Refuse, before any work, stage settings that mean images: a fine-tune on labels, adaround,
        ranks chosen by image accuracy."""
        where = f"stage '{stage.name}' (line {stage.line} of the recipe)"
        if stage.finetune.epochs and not stage.finetune.distill:
            raise DeepslimError(f"{where}: a retrieval fine-tune has no labels, it distils from the input model",
                                hint="set finetune: {distill: true, ...}")
        if getattr(stage.config, "rounding", None) == "adaround":
            raise DeepslimError(f"{where}: rounding: adaround is for image models", hint="use rounding: nearest")
        if stage.technique == "factorize" and stage.config.selection == "sensitivity":
            raise DeepslimError(f"{where}: selection: sensitivity scores ranks by image accuracy",
                                hint="use selection: energy (or mac_ratio) for a text model")

    def int8_calibration(self, size: int) -> list[tuple[dict, None]]:
        """Static int8's calibration batches: the first ``size`` training texts (queries and descriptions)."""
        texts = self._texts(self.data.train, size)
        return [(self._tokenize(self.tokenizer_model, texts[i:i + 32], max_length=DOC_MAX_TOKENS), None)
                for i in range(0, len(texts), 32)]

    def calibration_samples(self, size: int) -> tuple[int, str]:
        return len(self._texts(self.data.train, size)), "text"

    def probe(self) -> list[dict]:
        """Validation texts (64 queries and 64 descriptions) in batches of 32, as layer dropping measures them."""
        texts = self._texts(self.data.val, 128)
        return [move_inputs(self._tokenize(self.tokenizer_model, texts[i:i + 32], max_length=DOC_MAX_TOKENS),
                            self.device) for i in range(0, len(texts), 32)]

    def probe_task(self, teacher: nn.Module):
        return EmbeddingMatch("cosine", teacher=teacher.to(self.device))

    def latency_cases(self) -> list[tuple[int, dict]]:
        return [(1, self.query), (32, self.document)]

    def macs(self, model: nn.Module) -> int:
        return count_ops(model.eval().cpu(), self.query).macs

    def export(self, model: nn.Module, path: Path) -> None:
        export_onnx(model.cpu().eval(), path, self.query, dynamic_sequence=True)

    def score(self, model: nn.Module, device) -> dict:
        from ..text.evaluate import evaluate_retrieval

        return self._scores(evaluate_retrieval(model.to(device or "cpu").eval(), self.data.test))

    def score_onnx(self, path: Path) -> dict:
        from ..text.evaluate import evaluate_retrieval

        return self._scores(evaluate_retrieval(self.tokenizer_model, self.data.test, onnx=path))

    @staticmethod
    def _scores(result: dict) -> dict:
        return {"accuracy": result["recall@1"],
                "retrieval": {k: result[k] for k in ("recall@1", "recall@10", "mrr", "n")}}

    def _teacher_targets(self, teacher: nn.Module) -> tuple[list[str], torch.Tensor]:
        """The training texts and the teacher's embeddings of them, computed at the first fine-tune only."""
        from ..text.evaluate import encode_texts

        if self._targets is None:
            texts = self._texts(self.data.train)
            log(f"  teacher embeddings of {plural(len(texts), 'training text')} (once per run)")
            self._targets = texts, encode_texts(teacher.eval(), texts, max_length=DOC_MAX_TOKENS, desc="teacher")
        return self._targets

    def finetune(self, target: nn.Module, teacher: nn.Module, ft, callbacks: list) -> None:
        from ..text import TextBatches

        texts, targets = self._teacher_targets(teacher.to(self.device))
        cfg = TrainConfig(epochs=ft.epochs, lr=ft.lr, batch_size=ft.batch_size, optimizer="adamw", weight_decay=0.01,
                          warmup_epochs=0.05, augment=False, grad_clip=1.0, seed=ft.seed)
        batches = TextBatches(target, texts, ft.batch_size, DOC_MAX_TOKENS, seed=ft.seed, targets=targets)
        Trainer(target, cfg, callbacks=callbacks, device=self.device,
                task=EmbeddingMatch("cosine")).fit(batches)

    def describe_finetune(self) -> str:
        return f"{plural(2 * len(self.data.train), 'training text')} (no labels: distilled from the input model)"


def task_for(data, model: nn.Module, device: torch.device):
    """The task a compress run on ``data`` with ``model`` is, refusing a model the data cannot feed."""
    from ..text.embedder import SentenceEmbedder

    if not hasattr(data.train, "queries"):
        if isinstance(model, SentenceEmbedder):
            raise DeepslimError(f"{data.name} is an image data set, and a sentence embedder takes text",
                                hint="use --data debian-descriptions (or another text retrieval data set)")
        return ImageTask(data, device)
    if not isinstance(model, SentenceEmbedder):
        raise DeepslimError(f"{data.name} is a text retrieval data set, and compress runs it with a sentence "
                            f"embedder, not a {type(model).__name__}", hint="use --pretrained minilm-l6 or a "
                            "folder saved from one")
    return RetrievalTask(data, model, device)


def check_recipe_fits(recipe, task) -> None:
    """Refuse, before any work, a stage whose technique or settings cannot serve ``task`` (e.g. channel
    pruning on text), and a speed-up target at a batch size the task is not timed at."""
    for stage in recipe.stages:
        task.check_stage(stage)
        if task.kind not in TECHNIQUES[stage.technique].tasks:
            usable = sorted(n for n, t in TECHNIQUES.items() if task.kind in t.tasks)
            raise DeepslimError(f"stage '{stage.name}' ({stage.technique}) does not apply to {task.kind} "
                                f"(line {stage.line} of the recipe)", hint=f"for {task.kind} use: {', '.join(usable)}")
    large = task.batch_sizes[-1]
    for key in recipe.targets:
        if key.startswith("min_speedup_b") and key not in ("min_speedup_b1", f"min_speedup_b{large}"):
            raise DeepslimError(f"target {key} does not apply: a {task.kind} run is timed at batch 1 and {large}",
                                hint=f"use min_speedup_b1 and min_speedup_b{large}")
