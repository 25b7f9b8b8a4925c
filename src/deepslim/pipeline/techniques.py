"""The techniques a recipe stage can name, each a config class and a function applying it.

An ``apply`` function edits ``ctx.model`` in place (or replaces it) and returns details for
the stage record. Fine-tuning is the runner's job, except for QAT where training is the
technique; ``ctx.finetune_callbacks`` holds what a fine-tune must keep (masks). Each says, in
the log and in its details, what data it used beyond the fine-tune (BatchNorm re-estimation,
int8 calibration), so a jump in accuracy before any fine-tune is explained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..core import Config, DeepslimError, log
from ..core.inputs import move_inputs
from ..core.text import plural
from ..lowrank import Factorization, factorize_
from ..profiling.counting import count_ops
from ..prune import (
    BlockDropping,
    ChannelPruning,
    FFNPruning,
    HeadPruning,
    LayerDropping,
    MagnitudePruning,
    NMSparsity,
    RandomPruning,
    adaptive_prune_,
    prune_,
)
from ..prune.masks import KeepMasked
from ..prune.sensitivity import prune_to_budget, sensitivity_scan
from ..quantize import PTQConfig, adaround_model, export_int8, quantize_
from ..quantize.half import HalfPrecision, export_half_onnx, to_half
from ..quantize.int8 import export_int8_dynamic
from ..train.batchnorm import recalibrate_batchnorm_
from .nas_stage import OFASubnetSearch, apply_ofa_subnet

INT8_FILE = "model.int8.onnx"
HALF_FILE = "model.fp16.onnx"
DEPLOYED_FILES = (INT8_FILE, HALF_FILE)  # what a final stage ships instead of a float32 model.onnx


@dataclass
class SensitivityPruning(Config):
    """Channel pruning to ``mac_ratio`` of the MACs with per-layer ratios from a sensitivity scan."""

    mac_ratio: float = 0.5
    ratios: tuple = (0.25, 0.5, 0.75, 0.9)
    importance: str = "l2"
    scan_finetune_images: int = 0   # each scan trial recovers on this many training images first

    def __post_init__(self):
        self.check_range("mac_ratio", 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        self.check_range("scan_finetune_images", 0, None, integer=True)
        for r in self.ratios:
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not 0 < r < 1:
                from ..core import DeepslimError

                raise DeepslimError(f"SensitivityPruning.ratios holds {r!r}", hint="ratios lie in (0, 1)")


@dataclass
class AdaptivePruning(Config):
    """Channel pruning to ``mac_ratio`` of the MACs, per-layer ratios chosen by measuring whole pruned models."""

    mac_ratio: float = 0.5
    step: float = 0.05
    importance: str = "l2"
    max_ratio: float = 0.9
    round_to: int | None = None
    step_finetune_images: int = 0

    def __post_init__(self):
        if self.round_to is not None:
            self.check_range("round_to", 1, None, integer=True)
        self.check_range("mac_ratio", 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        self.check_range("step", 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        self.check_range("max_ratio", 0.0, 1.0, low_inclusive=False, high_inclusive=False)
        self.check_range("step_finetune_images", 0, None, integer=True)


@dataclass
class QAT(PTQConfig):
    """Quantization-aware training (LSQ), then int8 export; epochs and lr come from ``finetune``."""

    def __post_init__(self):
        super().__post_init__()
        if self.rounding != "nearest":
            raise DeepslimError("qat learns the weights themselves; rounding: adaround is a post-training method",
                                hint="use technique quantize with rounding: adaround, or drop rounding from qat")


@dataclass
class StageContext:
    model: nn.Module
    data: object                 # DataSplits, or TextSplits for a retrieval run
    example: object              # one input batch on the device (a tensor, or token ids and mask)
    device: torch.device
    stage_dir: Path
    calibration: torch.Tensor | None  # training images for BN re-estimation and int8 calibration (None: text)
    train: Callable | None = None  # train(model, extra_callbacks) runs the stage's fine-tune config
    finetune_callbacks: list = field(default_factory=list)
    deployed_onnx: Path | None = None  # the file a final stage ships (int8 or float16 ONNX)
    precision: str | None = None       # its precision: "int8" or "float16"
    source: nn.Module | None = None  # the model compress was given (a supernet, for ofa_subnet)
    task: object = None              # tasks.ImageTask or tasks.RetrievalTask: probes, exports, scores
    teacher: nn.Module | None = None  # the input model (what distillation and layer dropping compare with)


def _recalibrate(ctx: StageContext) -> dict:
    """Re-estimate BatchNorm statistics of the edited model and say so (it moves accuracy by itself)."""
    if ctx.calibration is None:  # a text model: no BatchNorm, no images
        return {}
    layers = recalibrate_batchnorm_(ctx.model, ctx.calibration)
    log(f"  BatchNorm statistics of {plural(layers, 'layer')} re-estimated on "
        f"{plural(len(ctx.calibration), 'training image')}")
    return {"batchnorm_reestimated": {"layers": layers, "images": len(ctx.calibration)}}


def _prune(ctx: StageContext, config: Config) -> dict:
    plan = prune_(ctx.model, config, example_inputs=ctx.example, data=ctx.task.probe(),
                  task=ctx.task.probe_task(ctx.teacher))
    details = {"plan": plan.to_dict()}
    if plan.structured:
        details.update(_recalibrate(ctx))
    else:
        ctx.finetune_callbacks.append(KeepMasked(plan.masks))
    return details


def _sensitivity_prune(ctx: StageContext, config: SensitivityPruning) -> dict:
    log(f"  sensitivity scan: every trial re-estimates BatchNorm on {len(ctx.calibration):,} training images and "
        f"is scored on {len(ctx.data.val):,} validation images")
    scan = sensitivity_scan(ctx.model, ctx.data.val, ctx.example, ratios=config.ratios, importance=config.importance,
                            calibration_images=ctx.calibration, train_data=ctx.data.train,
                            finetune_images=config.scan_finetune_images)
    ratios, plan = prune_to_budget(ctx.model, scan, config.mac_ratio * scan.baseline_macs, ctx.example,
                                   importance=config.importance)
    return {"ratios": ratios, "plan": plan.to_dict(), **_recalibrate(ctx)}


def _adaptive_prune(ctx: StageContext, config: AdaptivePruning) -> dict:
    macs = count_ops(ctx.model, (ctx.example,)).macs
    log(f"  adaptive pruning: every step re-estimates BatchNorm on {len(ctx.calibration):,} training images and "
        f"is scored on {len(ctx.data.val):,} validation images")
    result = adaptive_prune_(ctx.model, ctx.data.val, config.mac_ratio * macs, ctx.example, step=config.step,
                             importance=config.importance, max_ratio=config.max_ratio, round_to=config.round_to,
                             calibration_images=ctx.calibration, train_data=ctx.data.train,
                             finetune_images=config.step_finetune_images)
    return {"ratios": result.ratios, "history": result.history, "plan": result.plan.to_dict(),
            "batchnorm_reestimated": {"images": len(ctx.calibration), "in": "every step"}}


def _factorize(ctx: StageContext, config: Factorization) -> dict:
    images = ctx.task.kind == "classification"  # text: ranks by energy or MAC ratio (check_stage refused the rest)
    plan = factorize_(ctx.model, config, ctx.example, val_data=ctx.data.val if images else None)
    return {"plan": plan.to_dict(), **_recalibrate(ctx)}


def _calibration_note(ctx: StageContext, config: PTQConfig) -> dict:
    samples, unit = ctx.task.calibration_samples(config.calibration_size)
    log(f"  int8 ranges calibrated on {plural(samples, 'training ' + unit)}")
    return {"calibration_images": samples}


def _quantize(ctx: StageContext, config: PTQConfig) -> dict:
    ctx.deployed_onnx, ctx.precision = ctx.stage_dir / INT8_FILE, "int8"
    note = _calibration_note(ctx, config)
    model, extra = ctx.model, {}
    calibration = ctx.task.int8_calibration(config.calibration_size)
    if config.rounding == "adaround":  # round once; the ONNX model and the twin both quantize the result
        model, rounding, config = adaround_model(model, config, calibration)
        extra["adaround"] = {"layers": rounding["layers"], "left_at_nearest": rounding["nearest"]}
    info = export_int8(model, calibration, ctx.deployed_onnx, config, dynamic_sequence=ctx.task.kind == "retrieval")
    ctx.model = quantize_(model, config, calibration)  # the reloadable PyTorch twin
    return {"int8": {k: info[k] for k in ("quantized_nodes", "kept_float", "left_float")}, **extra, **note}


def _qat(ctx: StageContext, config: QAT) -> dict:
    from ..quantize.qat import prepare_qat, qat_export_config, strip_qat

    qat = prepare_qat(ctx.model, ctx.calibration, config=config)
    ctx.train(qat, [])
    ctx.deployed_onnx, ctx.precision = ctx.stage_dir / INT8_FILE, "int8"
    info = export_int8(strip_qat(qat).cpu(), ctx.calibration, ctx.deployed_onnx, qat_export_config(config))
    ctx.model = qat.eval()
    return {"int8": {k: info[k] for k in ("quantized_nodes", "kept_float", "left_float")}, "trained": True,
            **_calibration_note(ctx, config)}


@dataclass
class DynamicInt8(Config):
    """Dynamic int8 on ONNX Runtime (int8 weights, activations quantized per batch; no calibration):
    MatMul/Gemm layers, and with ``embeddings`` the embedding tables too (half of a small transformer)."""

    embeddings: bool = True


def _quantize_dynamic(ctx: StageContext, config: DynamicInt8) -> dict:
    ctx.deployed_onnx, ctx.precision = ctx.stage_dir / INT8_FILE, "int8"
    text = ctx.task.kind == "retrieval"
    info = export_int8_dynamic(ctx.model, move_inputs(ctx.example, "cpu"), ctx.deployed_onnx,
                               dynamic_sequence=text, quantize_embeddings=config.embeddings)
    log(f"  dynamic int8: MatMul/Gemm weights in 8 bits{', embedding tables too' if config.embeddings else ''}; "
        "activations quantized per batch by ONNX Runtime (no calibration data)")
    return {"int8_dynamic": {"embeddings": info["embeddings"], "max_abs_diff": info["max_abs_diff"],
                             "max_abs_output": info["max_abs_output"]}}


@dataclass
class HalfStage(HalfPrecision):
    """A recipe's ``half`` stage: float16 weights, shipped as a float16 ONNX file (float32 in and out)."""

    def __post_init__(self):
        super().__post_init__()
        if self.dtype != "float16":
            raise DeepslimError("a half stage ships a float16 ONNX file, and bfloat16 has no ONNX converter",
                                hint="use dtype: float16, or deepslim.quantize.to_half(model, 'bfloat16') in Python")


def _half(ctx: StageContext, config: HalfStage) -> dict:
    ctx.deployed_onnx, ctx.precision = ctx.stage_dir / HALF_FILE, config.dtype
    export_half_onnx(ctx.model, ctx.deployed_onnx, ctx.example)
    ctx.model = to_half(ctx.model.eval(), config.dtype)  # the reloadable PyTorch twin, half the bytes
    log(f"  {config.dtype} weights; {HALF_FILE} computes in {config.dtype} on GPU runtimes (ONNX Runtime's CPU "
        "provider runs it in float32 behind casts: no speed-up there)")
    return {"half": {"dtype": config.dtype, "onnx": HALF_FILE}}


@dataclass
class Technique:
    config: type
    apply: Callable[[StageContext, Config], dict]
    summary: str
    final: bool = False        # produces the deployed int8 model: must be the last stage
    first: bool = False        # picks the model later stages compress: must be the first stage
    trains_itself: bool = False
    tasks: tuple = ("classification",)  # the tasks (tasks.py) it applies to


BOTH = ("classification", "retrieval")


TECHNIQUES: dict[str, Technique] = {
    "channel_pruning": Technique(ChannelPruning, _prune, "remove channels for real (uniform or per-layer ratio)"),
    "sensitivity_pruning": Technique(SensitivityPruning, _sensitivity_prune,
                                     "channel pruning to a MAC ratio with per-layer ratios from a sensitivity scan"),
    "adaptive_pruning": Technique(AdaptivePruning, _adaptive_prune,
                                  "channel pruning to a MAC ratio, per-layer ratios found by measuring whole models"),
    "magnitude_pruning": Technique(MagnitudePruning, _prune, "zero the smallest weights (no speed-up claimed)",
                                   tasks=BOTH),
    "random_pruning": Technique(RandomPruning, _prune, "zero random weights (a control)", tasks=BOTH),
    "nm_sparsity": Technique(NMSparsity, _prune, "keep n of every m weights (no speed-up on CPU runtimes)",
                             tasks=BOTH),
    "head_pruning": Technique(HeadPruning, _prune, "remove whole attention heads (head counts updated)", tasks=BOTH),
    "ffn_pruning": Technique(FFNPruning, _prune, "remove hidden neurons of feed-forward blocks", tasks=BOTH),
    "layer_dropping": Technique(LayerDropping, _prune, "remove whole encoder layers (greedy by loss, or by position)",
                                tasks=BOTH),
    "block_dropping": Technique(BlockDropping, _prune, "remove whole residual blocks of depth (greedy by loss, or "
                                "by name)"),
    "factorize": Technique(Factorization, _factorize, "low-rank factorization (svd, spatial, tucker)", tasks=BOTH),
    "quantize": Technique(PTQConfig, _quantize, "post-training static int8 for ONNX Runtime (QDQ, per-channel "
                          "weights)", final=True, tasks=BOTH),
    "quantize_dynamic": Technique(DynamicInt8, _quantize_dynamic,
                                  "dynamic int8 for ONNX Runtime (Linear layers and embedding tables; no calibration)",
                                  final=True, tasks=BOTH),
    "half": Technique(HalfStage, _half, "float16 weights for GPU deployment (no speed-up on CPU runtimes)",
                      final=True),
    "qat": Technique(QAT, _qat, "quantization-aware training, then int8 for ONNX Runtime", final=True,
                     trains_itself=True),
    "ofa_subnet": Technique(OFASubnetSearch, apply_ofa_subnet,
                            "the best subnet of a once-for-all supernet under a latency, MACs or params limit",
                            first=True),
}
