"""Per-epoch training checkpoints, written atomically, loaded with ``weights_only=True``."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..core import DeepslimError


def save_checkpoint(path: Path, state: dict) -> None:
    """Write ``state`` to ``path`` via a temporary file so a crash never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise DeepslimError(f"cannot read checkpoint {path}: {str(exc).splitlines()[0]}",
                            hint="the file is corrupt or truncated; start again with --overwrite") from exc
