"""Activation range observers for post-training calibration.

Each observer sees samples of one tensor's values (collected over the calibration set) and
returns the (low, high) range to quantize it to uint8 with:

- ``minmax``: the observed extremes (no clipping);
- ``percentile``: the ``percentile`` and ``100 - percentile`` quantiles (clips rare outliers);
- ``mse``: the clipping range, among candidates, with the least mean squared quantization error;
- ``entropy``: the range whose quantized histogram keeps the KL divergence to the observed
  one smallest (the TensorRT calibration of Migacz, 2017).
"""

from __future__ import annotations

import numpy as np

from ..core import DeepslimError

OBSERVERS = ("minmax", "percentile", "mse", "entropy")


def _fake_quant_error(x: np.ndarray, low: float, high: float, levels: int = 256) -> float:
    low, high = min(low, 0.0), max(high, 0.0)
    scale = max((high - low) / (levels - 1), 1e-12)
    zero = np.round(-low / scale)
    q = np.clip(np.round(x / scale) + zero, 0, levels - 1)
    return float(np.mean(((q - zero) * scale - x) ** 2))


def minmax_range(x: np.ndarray) -> tuple[float, float]:
    return float(x.min()), float(x.max())


def percentile_range(x: np.ndarray, percentile: float = 99.99) -> tuple[float, float]:
    return float(np.percentile(x, 100 - percentile)), float(np.percentile(x, percentile))


def mse_range(x: np.ndarray, candidates: int = 80) -> tuple[float, float]:
    """Shrink the min/max range towards zero (geometric steps down to 1%); keep the least-error range."""
    low, high = minmax_range(x)
    best, best_err = (low, high), _fake_quant_error(x, low, high)
    for f in np.geomspace(1.0, 0.01, candidates)[1:]:
        err = _fake_quant_error(x, low * f, high * f)
        if err < best_err:
            best, best_err = (float(low * f), float(high * f)), err
    return best


def entropy_range(x: np.ndarray, bins: int = 2048, levels: int = 128) -> tuple[float, float]:
    """KL-optimal clipping of |x| (applied symmetrically to the signed part).

    For a threshold at bin i, the reference distribution P is the histogram up to i with
    the tail folded into the last bin; Q is the histogram up to i (tail dropped) merged into
    ``levels`` buckets and expanded back over the non-empty bins.
    The threshold with the smallest KL(P || Q) wins.
    """
    magnitude = np.abs(x)
    magnitude = magnitude[magnitude > 0]  # exact zeros (ReLU) are represented exactly; a spike there skews KL
    if magnitude.size == 0:
        return 0.0, 0.0
    top = float(magnitude.max())
    hist, edges = np.histogram(magnitude, bins=bins, range=(0, top))
    hist = hist.astype(np.float64)
    best_i, best_kl = bins, np.inf
    for i in range(levels, bins + 1, max(1, (bins - levels) // 128)):
        p = hist[:i].copy()
        p[-1] += hist[i:].sum()
        if p.sum() == 0:
            continue
        clipped = hist[:i]  # Q is quantized from the histogram *without* the folded tail
        q = np.zeros(i)
        for idx in np.array_split(np.arange(i), levels):
            nonzero = clipped[idx] > 0
            if nonzero.any():
                q[idx[nonzero]] = clipped[idx].sum() / nonzero.sum()
        p_n, q_n = p / p.sum(), q / max(q.sum(), 1e-12)
        mask = p_n > 0
        kl = float(np.sum(p_n[mask] * np.log(p_n[mask] / np.maximum(q_n[mask], 1e-12))))
        if kl < best_kl:
            best_i, best_kl = i, kl
    threshold = float(edges[best_i])
    low = max(float(x.min()), -threshold)
    return low, min(float(x.max()), threshold)


def observe(x: np.ndarray, observer: str, percentile: float = 99.99) -> tuple[float, float]:
    """Range of ``x`` by the named observer.

    Example:
        >>> x = np.concatenate([np.random.default_rng(0).normal(size=10000), [50.0]])
        >>> observe(x, "minmax")[1], observe(x, "percentile")[1] < 10
        (50.0, True)
    """
    if x.size == 0:
        raise DeepslimError("an activation saw no calibration data", hint="pass a non-empty calibration set")
    x = x.astype(np.float32, copy=False).ravel()
    if observer == "minmax":
        return minmax_range(x)
    if observer == "percentile":
        return percentile_range(x, percentile)
    if observer == "mse":
        return mse_range(x)
    if observer == "entropy":
        return entropy_range(x)
    raise DeepslimError(f"unknown observer '{observer}'", hint=f"choose from {', '.join(OBSERVERS)}")
