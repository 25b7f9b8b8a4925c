"""What a timing depends on besides the model: CPU (with its vector extensions), threads and library
versions, recorded beside every measurement.

Example:
    >>> sorted(environment())[:3]
    ['cores', 'cpu', 'cpu_features']
"""

from __future__ import annotations

import os

import torch

from ..core import cpu_name
from ..core.device import cpu_features


def cpu_description() -> dict:
    """CPU model and core count, recorded beside every timing."""
    return {"cpu": cpu_name(), "cpu_features": cpu_features(), "cores": os.cpu_count(),
            "torch_threads": torch.get_num_threads()}


def environment() -> dict:
    """Python, CPU and the versions of the packages that decide speed: recorded with every benchmark."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    env = {"python": platform.python_version(), **cpu_description()}
    for pkg in ("torch", "onnxruntime", "onnx", "torch-pruning", "deepslim"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = "not installed"
    return env
