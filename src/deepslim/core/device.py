"""Device selection: ``auto`` means CUDA when present, else CPU."""

from __future__ import annotations

import torch

from .errors import DeepslimError


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """Turn ``"auto"``/``"cpu"``/``"cuda"``/``"cuda:1"`` into a usable device.

    Example:
        >>> resolve_device("cpu")
        device(type='cpu')

    ``cuda`` without a GPU, or ``cuda:N`` beyond the GPUs present, is refused in one line.
    """
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise DeepslimError(f"unknown device '{device}'", hint="use auto, cpu, cuda or cuda:N") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DeepslimError(f"--device {device} was asked for but no CUDA GPU is available",
                            hint="use --device cpu (or auto)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        # checked here, before any work: torch itself only fails at the first .to(), mid-run
        count = torch.cuda.device_count()
        known = "cuda:0" if count == 1 else f"cuda:0..cuda:{count - 1}"
        raise DeepslimError(f"--device {device} names GPU {dev.index}, but this machine has {count} "
                            f"GPU{'' if count == 1 else 's'} ({known})",
                            hint="use --device cuda (the first GPU) or an index below the count")
    return dev


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what ``platform`` knows."""
    import platform
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


# The vector extensions that decide how fast fp32 and int8 kernels run: two machines both named
# "AMD EPYC" gave the flagship's fp32 ONNX model 0.50 and 0.29 ms at batch 1 (BENCHMARKS.md).
_SPEED_FLAGS = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16")


def cpu_features() -> list[str]:
    """The speed-relevant instruction-set extensions this CPU reports (Linux), e.g. ['avx2', 'avx512f'].

    Example:
        >>> isinstance(cpu_features(), list)
        True
    """
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                present = set(line.split(":", 1)[1].split())
                return [f for f in _SPEED_FLAGS if f in present]
    except OSError:
        pass
    return []
