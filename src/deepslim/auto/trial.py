"""One proxy trial of `deepslim auto`: a plan's recipe run short, on a subset, scored on validation data.

The proxy is the cheap fidelity of the search: every stage of the plan runs as `deepslim compress`
runs it (the same techniques, the same int8 export), but the fine-tunes train on ``images``
training samples for a few epochs, and the model is scored on the **validation** split (the
search never looks at the test split; the finalists' full runs do). Latency is measured, never
predicted: the trial's deployed ONNX file against the input model's, timed in turns on ONNX Runtime
at the target batch size.

Example:
    >>> proxy = ProxyRun(model, data, torch.device("cpu"), images=4096, batch=1)       # doctest: +SKIP
    >>> proxy.run(parse_recipe(text), Path("OUT/trials/0003"))["speedup"]             # doctest: +SKIP
    3.1
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

import torch
from torch import nn

from ..core import log
from ..data.text import TextPairs, TextSplits
from ..pipeline.publish import deployed_onnx
from ..pipeline.stage import measure_float, run_stage, stage_dir
from ..pipeline.tasks import task_for
from ..profiling.latency import interleave_latency

PROXY_FILE = "proxy.json"


def proxy_data(data, images: int):
    """``data`` with its training split cut to the first ``images`` samples and its test split replaced by
    the validation split: what a proxy trial fine-tunes on and is scored on."""
    n = min(images, len(data.train))
    if isinstance(data, TextSplits):
        t = data.train
        train = TextPairs(t.ids[:n], t.queries[:n], t.documents[:n], t.sections[:n])
    else:
        train = data.train.take(torch.arange(n))
    return dataclasses.replace(data, train=train, test=data.val, options={**data.options, "subset": n, "proxy": True})


def _size_mb(path: Path) -> float:
    return path.stat().st_size / 1e6


class ProxyRun:
    """Runs plans at the proxy fidelity against one input model, measured once (``baseline``)."""

    def __init__(self, model: nn.Module, data, device: torch.device, *, images: int, batch: int,
                 latency_seconds: float = 0.5, seed: int = 0):
        self.model, self.device, self.batch, self.seed = model.eval(), device, batch, seed
        self.latency_seconds = latency_seconds
        self.full_data = data
        self.data = proxy_data(data, images)
        self.task = task_for(self.data, model, device)
        # each stage records latency at the search's batch only (the full runs time both batch sizes)
        cases = dict(self.task.latency_cases())
        self.latency_input = cases.get(batch, next(iter(cases.values())))
        self.task.batch_sizes = (batch,)
        self.task.latency_cases = lambda: [(batch, self.latency_input)]
        self.teacher = copy.deepcopy(model).eval()

    def baseline(self, folder: Path) -> dict:
        """The input model at this fidelity: validation score, MACs, ONNX size and ONNX Runtime latency."""
        record = measure_float(copy.deepcopy(self.model), folder, self.task, self.latency_seconds, self.device)
        onnx = folder / "model.onnx"
        return {"accuracy": record["accuracy"], "macs": record["macs"], "size_mb": _size_mb(onnx),
                "ort_latency_ms": record["latency_ms"]["onnxruntime"][str(self.batch)], "onnx": str(onnx)}

    def run(self, recipe, folder: Path, baseline_onnx: Path) -> dict:
        """Every stage of ``recipe`` into ``folder/stages``; returns the trial's measured figures."""
        if folder.exists():  # a trial killed half-way: start it again
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
        torch.manual_seed(self.seed)
        current, masked, record, index = copy.deepcopy(self.model).to(self.device), [], {}, 0
        for index, stage in enumerate(recipe.stages, start=1):
            record, current = run_stage(index, stage, current, self.teacher, self.task, folder, self.device,
                                        masked, self.latency_seconds)
            masked += record.get("masked_layers", [])
        shipped = deployed_onnx(stage_dir(folder, index, recipe.stages[-1]))
        log(f"  timing the plan against the input model in turns (onnxruntime, batch {self.batch})")
        (times,) = interleave_latency([Path(baseline_onnx), shipped], self.latency_input, batch_sizes=(self.batch,),
                                      runtimes=("onnxruntime",), min_seconds=self.latency_seconds)
        versus = times.compare(0, 1)
        return {"accuracy": record["accuracy"], "macs": record["macs"], "size_mb": _size_mb(shipped),
                "ort_latency_ms": versus.candidate_ms, "speedup": versus.speedup, "precision": record["precision"],
                "onnx": str(shipped.relative_to(folder))}
