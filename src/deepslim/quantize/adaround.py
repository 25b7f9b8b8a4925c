"""AdaRound (Nagel et al., 2020): learn, layer by layer, whether each weight rounds up or down.

Round-to-nearest minimises each weight's own error, not the layer's output error. AdaRound
keeps every weight on its quantization grid but chooses floor or ceiling by minimising

    || W x - W~(V) x~ ||^2  +  lambda * sum(1 - |2 h(V) - 1|^beta)

over a few hundred calibration samples, where ``W~(V) = s * clamp(floor(W / s) + h(V))`` and
``h(V) = clamp(sigmoid(V) * (zeta - gamma) + gamma, 0, 1)`` is the rectified sigmoid. The
regulariser, with ``beta`` annealed from 20 to 2 after a warm-up without it, drives every
``h(V)`` to 0 or 1; the final weight is the floor plus ``1`` where ``V >= 0``.

``x`` is the layer's input in the float model and ``x~`` its input in the model whose earlier
layers are already rounded (and whose activations are quantized, when their ranges are known):
the asymmetric formulation, so each layer also corrects the error its predecessors left.

The result is a float model whose weights lie exactly on the grid, so both int8 paths keep the
decisions: ``QuantLayer`` and ONNX Runtime's quantizer round them to themselves. Written here
because ONNX Runtime's quantizer only rounds to nearest and AIMET does not install on this
torch; the method is a few dozen lines over PyTorch's own autograd.

Example:
    >>> import deepslim, torch
    >>> model = deepslim.create_model("fmnist-cnn").eval()
    >>> report = adaround_weights_(model, [torch.randn(64, 1, 28, 28)], AdaRoundConfig(iterations=10))
    >>> sorted(report["layers"])
    ['0.0', '10', '2.0', '4.0', '7']
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..core import Config, DeepslimError, log, progress
from ..core.inputs import batch_size, call_model, model_device, move_inputs
from ..core.ties import tied_tensors
from .primitives import fake_quantize, qrange, weight_scales

ZETA, GAMMA = 1.1, -0.1  # the rectified sigmoid's stretch (paper, section 3.3)
SUPPORTED = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d)
# Below this many samples the per-layer optimisation overfits the few it sees (the paper uses 1,024).
MIN_SAMPLES = 64


@dataclass
class AdaRoundConfig(Config):
    """How long each layer is optimised and how hard the regulariser pushes to 0/1.

    Defaults follow the paper and AIMET (reg weight 0.01, beta 20 -> 2, 20% warm-up, Adam),
    except the schedule: 1,000 iterations per layer instead of 10,000 keep a 20-layer CNN to
    minutes on two CPU cores, and a 10x step (1e-2, not 1e-3) lets V still cross the rectified
    sigmoid's range in them. Measured on the shipped CNNs: at 1e-3 only 43-60% of the soft values
    reached 0 or 1 in the worst layer, at 1e-2 over 98% (4-bit flagship 94.57% -> 94.66%).
    """

    iterations: int = 1000
    batch_size: int = 32
    lr: float = 1e-2
    reg_weight: float = 0.01
    beta_start: float = 20.0
    beta_end: float = 2.0
    warmup: float = 0.2
    seed: int = 0

    def __post_init__(self):
        if isinstance(self.iterations, bool) or not isinstance(self.iterations, int) or self.iterations <= 0:
            raise DeepslimError(f"AdaRound iterations must be a positive integer, got {self.iterations!r}",
                                hint="use a few hundred to a few thousand iterations per layer (default 1000)")
        self.check_range("batch_size", 1, None, integer=True)
        self.check_range("lr", 0.0, None, low_inclusive=False)
        self.check_range("reg_weight", 0.0, None)
        self.check_range("warmup", 0.0, 1.0, high_inclusive=False)
        self.check_range("beta_end", 0.0, None, low_inclusive=False)
        self.check_range("beta_start", self.beta_end, None)


def rectified_sigmoid(v: torch.Tensor) -> torch.Tensor:
    """h(V) in [0, 1]: a sigmoid stretched to (gamma, zeta) and clipped, so 0 and 1 are reached exactly."""
    return torch.clamp(torch.sigmoid(v) * (ZETA - GAMMA) + GAMMA, 0.0, 1.0)


def initial_v(rest: torch.Tensor) -> torch.Tensor:
    """V with h(V) equal to ``rest`` (the fractional part of W / s), so optimisation starts at the float weight."""
    p = ((rest - GAMMA) / (ZETA - GAMMA)).clamp(1e-6, 1 - 1e-6)
    return torch.log(p / (1 - p))


def rounding_regularizer(h: torch.Tensor, beta: float) -> torch.Tensor:
    """sum(1 - |2h - 1|^beta): zero only when every h is 0 or 1."""
    return (1 - (2 * h - 1).abs().pow(beta)).sum()


def settled_share(v: torch.Tensor) -> float:
    """Share of the soft rounding values h(V) that the regulariser has driven to exactly 0 or 1."""
    h = rectified_sigmoid(v)
    return float(((h == 0) | (h == 1)).float().mean())


def annealed_beta(step: int, config: AdaRoundConfig) -> float | None:
    """None during the warm-up (no regulariser), then beta decays linearly from beta_start to beta_end."""
    start = int(config.warmup * config.iterations)
    if step < start:
        return None
    progress_ = (step - start) / max(config.iterations - start, 1)
    return config.beta_end + (config.beta_start - config.beta_end) * (1 - progress_)


class _Grid:
    """One layer's quantization grid: per-channel (or per-tensor) scales, floors and pinned maxima."""

    def __init__(self, weight: torch.Tensor, bits: int, per_channel: bool):
        self.qmin, self.qmax = qrange(bits, signed=True, narrow=True)
        scales = weight_scales(weight, bits, per_channel)
        self.scale = scales.reshape([-1] + [1] * (weight.ndim - 1)) if per_channel else scales.reshape(())
        ratio = weight.detach() / self.scale
        self.floor = torch.floor(ratio)
        self.rest = ratio - self.floor
        # The channel's largest weights sit on +-qmax and set the scale; rounding one of them down
        # would change the scale ONNX Runtime recomputes from max |w|. They keep round-to-nearest.
        self.pinned = torch.round(ratio).abs() >= self.qmax

    def soft(self, v: torch.Tensor) -> torch.Tensor:
        return self.scale * torch.clamp(self.floor + rectified_sigmoid(v), self.qmin, self.qmax)

    def hard(self, v: torch.Tensor) -> torch.Tensor:
        up = (v >= 0).to(self.floor.dtype)
        codes = torch.where(self.pinned, torch.round(self.floor + self.rest), self.floor + up)
        return self.scale * torch.clamp(codes, self.qmin, self.qmax)

    def nearest(self) -> torch.Tensor:
        return self.scale * torch.clamp(torch.round(self.floor + self.rest), self.qmin, self.qmax)


def _apply(layer: nn.Module, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The layer's output with ``weight`` in place of its own (the bias stays fixed)."""
    bias = None if layer.bias is None else layer.bias.detach()
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, bias)
    return layer._conv_forward(x, weight, bias)


def _reconstruction_error(layer: nn.Module, target: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """Squared error summed over the output channels, averaged over everything else (AIMET's form)."""
    channel_dim = -1 if isinstance(layer, nn.Linear) else 1
    return (output - target).pow(2).sum(channel_dim).mean()


def unsupported_layers(model: nn.Module, names: list[str]) -> dict[str, str]:
    """The quantized layers AdaRound leaves at round-to-nearest, each with the reason."""
    modules = dict(model.named_modules())
    tied = {alias.rpartition(".")[0] for alias in tied_tensors(model)} | {
        source.rpartition(".")[0] for source in tied_tensors(model).values()}
    reasons = {}
    for name in names:
        module = modules[name]
        if not isinstance(module, SUPPORTED):
            reasons[name] = f"{type(module).__name__} is not supported (Linear and Conv1d/2d/3d are)"
        elif name in tied:
            reasons[name] = "its weight is tied to another module's, which rounding it would change too"
        elif nn.utils.parametrize.is_parametrized(module):
            reasons[name] = "its weight is parametrized"
    for name, module in modules.items():
        if isinstance(module, nn.MultiheadAttention):
            reasons[name] = "nn.MultiheadAttention applies its projection weights functionally"
    return reasons


class _Capture(Exception):
    """Raised by a hook to stop a forward pass once the layer's input is captured."""


def _layer_inputs(model: nn.Module, layer: nn.Module, batches: list) -> list[torch.Tensor]:
    """The inputs ``layer`` receives over ``batches``; each forward stops at the layer. The hook is
    registered last, so it sees the input after any quantizer hook already on the layer."""
    captured: list[torch.Tensor] = []

    def record(module, inputs):
        captured.append(inputs[0].detach())
        raise _Capture

    handle = layer.register_forward_pre_hook(record)
    device = model_device(model)
    try:
        with torch.no_grad():
            for inputs in batches:
                try:
                    call_model(model, move_inputs(inputs, device))
                except _Capture:
                    pass
    finally:
        handle.remove()
    return captured


def _execution_order(model: nn.Module, names: list[str], example) -> list[str]:
    modules = dict(model.named_modules())
    order: list[str] = []
    handles = [modules[n].register_forward_pre_hook(lambda m, i, n=n: order.append(n) if n not in order else None)
               for n in names]
    try:
        with torch.no_grad():
            call_model(model, move_inputs(example, model_device(model)))
    finally:
        for h in handles:
            h.remove()
    return order


def _optimise_layer(layer: nn.Module, grid: _Grid, float_in: list[torch.Tensor], quant_in: list[torch.Tensor],
                    config: AdaRoundConfig, generator: torch.Generator, desc: str) -> torch.Tensor:
    """The learned rounding variables V of one layer."""
    weight = layer.weight.detach()
    v = initial_v(grid.rest).requires_grad_(True)
    optimizer = torch.optim.Adam([v], lr=config.lr)
    sizes = torch.tensor([len(x) for x in float_in], dtype=torch.float64)
    for step in progress(range(config.iterations), desc=desc):
        chunk = int(torch.multinomial(sizes, 1, generator=generator))
        rows = torch.randperm(len(float_in[chunk]), generator=generator)[: config.batch_size]
        with torch.no_grad():
            target = _apply(layer, float_in[chunk][rows], weight)
        output = _apply(layer, quant_in[chunk][rows], grid.soft(v))
        loss = _reconstruction_error(layer, target, output)
        beta = annealed_beta(step, config)
        if beta is not None:
            loss = loss + config.reg_weight * rounding_regularizer(rectified_sigmoid(v), beta)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return v.detach()


def _mean_error(layer, weight, float_in, quant_in) -> float:
    with torch.no_grad():
        errors = [_reconstruction_error(layer, _apply(layer, f, layer.weight), _apply(layer, q, weight))
                  for f, q in zip(float_in, quant_in)]
    return float(torch.stack(errors).mean())


def _input_quantizer(act_range: tuple[float, float]):
    """A forward pre-hook that fake-quantizes a layer's input to uint8 over ``act_range``."""
    qmin, qmax = qrange(8, signed=False)
    low, high = min(act_range[0], 0.0), max(act_range[1], 0.0)
    scale = max((high - low) / (qmax - qmin), 1e-8)
    zero = float(min(max(round(qmin - low / scale), qmin), qmax))

    def hook(module, inputs):
        return (fake_quantize(inputs[0], torch.tensor(scale), zero, qmin, qmax), *inputs[1:])
    return hook


def _check_samples(batches: list) -> int:
    total = sum(batch_size(b) for b in batches)
    if total < MIN_SAMPLES:
        raise DeepslimError(f"AdaRound needs at least {MIN_SAMPLES} calibration samples, got {total}",
                            hint="pass a few hundred (the paper uses 1,024), e.g. --calibration-images 512")
    return total


def adaround_weights_(model: nn.Module, batches: list, config: AdaRoundConfig | None = None, *,
                      names: list[str] | None = None, bits: int = 8, per_channel: bool = True,
                      act_ranges: dict[str, tuple[float, float]] | None = None) -> dict:
    """Round the weights of ``names`` (default: every Linear/Conv) in place onto the ``bits``-bit
    symmetric grid, choosing floor or ceiling per weight by AdaRound. ``model`` is the float model
    to be quantized (eval mode, BN already folded); ``batches`` are its calibration input batches.

    ``act_ranges`` (layer name -> (low, high)) quantize each rounded layer's input while later
    layers are optimised, as the int8 model will. Returns ``{"layers": {name: {...}}, "nearest":
    {name: reason}, "bits", "config"}``: per rounded layer its output error on the calibration data
    under round-to-nearest and under AdaRound (``nearest_error``, ``adaround_error``), the share of
    weights rounded up and the share of soft values the regulariser settled at 0 or 1; and the
    layers left at round-to-nearest, with why.
    """
    from ..prune.select import PRUNABLE

    config = config or AdaRoundConfig()
    _check_samples(batches)
    modules = dict(model.named_modules())
    if names is None:
        names = [n for n, m in modules.items() if isinstance(m, PRUNABLE)]
    skipped = unsupported_layers(model, names)
    todo = _execution_order(model, [n for n in names if n not in skipped], batches[0])
    for name in names:
        if name not in todo and name not in skipped:
            skipped[name] = "it never ran on the calibration data"
    for name, reason in skipped.items():
        log(f"AdaRound: {name} stays at round-to-nearest: {reason}")
    generator = torch.Generator().manual_seed(config.seed)
    float_model = copy.deepcopy(model).eval()  # frozen: every layer's float inputs and targets come from it
    float_modules = dict(float_model.named_modules())
    hooks = []
    report = {}
    try:
        for index, name in enumerate(todo, 1):
            layer = modules[name]
            float_in = _layer_inputs(float_model, float_modules[name], batches)
            if act_ranges and name in act_ranges:
                hooks.append(layer.register_forward_pre_hook(_input_quantizer(act_ranges[name])))
            quant_in = _layer_inputs(model, layer, batches)
            grid = _Grid(layer.weight, bits, per_channel)
            v = _optimise_layer(layer, grid, float_in, quant_in, config, generator,
                                f"AdaRound {index}/{len(todo)} {name}")
            rounded = grid.hard(v)
            report[name] = {"nearest_error": _mean_error(layer, grid.nearest(), float_in, quant_in),
                            "adaround_error": _mean_error(layer, rounded, float_in, quant_in),
                            "rounded_up": float(((v >= 0) & ~grid.pinned).float().mean()),
                            "settled": settled_share(v)}
            with torch.no_grad():
                layer.weight.copy_(rounded)
    finally:
        for h in hooks:
            h.remove()
    if report:
        better = sum(r["adaround_error"] < r["nearest_error"] for r in report.values())
        log(f"AdaRound: {len(report)} layers rounded at {bits} bits; output error below round-to-nearest's "
            f"in {better} of them")
    return {"layers": report, "nearest": skipped, "bits": bits, "config": config.to_dict()}


def adaround_is_exact(weight: torch.Tensor, original: torch.Tensor, bits: int = 8, per_channel: bool = True) -> bool:
    """True when every element of ``weight`` is floor or ceiling of ``original`` on its grid (for tests and checks)."""
    grid = _Grid(original, bits, per_channel)
    codes = weight / grid.scale
    lower, upper = grid.floor.clamp(grid.qmin, grid.qmax), (grid.floor + 1).clamp(grid.qmin, grid.qmax)
    close = lambda a, b: (a - b).abs() <= 1e-4 * torch.maximum(a.abs(), torch.ones_like(a))  # noqa: E731
    return bool(torch.all(close(codes, lower) | close(codes, upper)))


__all__ = ["AdaRoundConfig", "adaround_weights_", "adaround_is_exact", "rectified_sigmoid", "rounding_regularizer",
           "annealed_beta", "settled_share", "unsupported_layers", "MIN_SAMPLES"]

