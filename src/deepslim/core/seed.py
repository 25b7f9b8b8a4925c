"""Seeding and deterministic algorithms, for reproducible runs."""

from __future__ import annotations

import random
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (CPU and CUDA).

    Example:
        >>> seed_everything(0)
    """
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


@contextmanager
def deterministic_algorithms() -> Iterator[None]:
    """Use PyTorch's deterministic algorithms inside the block, then restore the previous settings.

    ``warn_only``: an op with no deterministic version (some CUDA kernels) warns instead of
    failing the run. cuDNN is pinned to deterministic kernels without autotuning. A caller
    that already turned on the strict mode keeps it. On CPU this changes no result of the
    ops deepslim trains with; what it cannot cover (thread count, CPU, torch build, cuBLAS
    without ``CUBLAS_WORKSPACE_CONFIG``) is listed in docs/training.md.

    Example:
        >>> with deterministic_algorithms():
        ...     torch.are_deterministic_algorithms_enabled()
        True
    """
    was_on = torch.are_deterministic_algorithms_enabled()
    was_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    cudnn = torch.backends.cudnn
    was_cudnn = (cudnn.deterministic, cudnn.benchmark)
    if not was_on:
        torch.use_deterministic_algorithms(True, warn_only=True)
    cudnn.deterministic, cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(was_on, warn_only=was_warn_only)
        cudnn.deterministic, cudnn.benchmark = was_cudnn
