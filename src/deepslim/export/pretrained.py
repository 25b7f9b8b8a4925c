"""Baselines shipped inside the package, trained by ``deepslim train`` (see each model card)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from torch import nn

from ..core.registry import unknown_name_error
from .artifact import is_artifact, load


def pretrained_dir() -> Path:
    return Path(str(resources.files("deepslim") / "pretrained"))


def list_pretrained() -> list[str]:
    """Names of the shipped pretrained models.

    Example:
        >>> "fmnist-resnet" in list_pretrained()   # doctest: +SKIP
        True
    """
    root = pretrained_dir()
    return sorted(p.name for p in root.iterdir() if is_artifact(p)) if root.is_dir() else []


def pretrained_path(name: str) -> Path:
    if name not in list_pretrained():
        raise unknown_name_error("pretrained model", name, list_pretrained())
    return pretrained_dir() / name


def load_pretrained(name: str, *, device="cpu") -> nn.Module:
    """Load a shipped baseline by name; no network is used.

    Example:
        >>> model = load_pretrained("fmnist-resnet")   # doctest: +SKIP
    """
    return load(pretrained_path(name), device=device)
