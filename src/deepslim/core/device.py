"""Device selection: ``auto`` means CUDA when present, else CPU."""

from __future__ import annotations

import torch

from .errors import DeepslimError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``"cpu"``/``"cuda"``/``"cuda:1"`` into a usable device.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeepslimError(f"unknown device '{device}'", hint="use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeepslimError("--device cuda was asked for but no CUDA GPU is available", hint="use --device cpu")
    return dev
