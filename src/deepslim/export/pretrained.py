"""Pretrained models by name: the baselines shipped inside the package, trained by ``deepslim train``
(see each model card), and ``minilm-l6``, whose weights come with the ``text`` extra."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from torch import nn

from ..core.registry import unknown_name_error
from .artifact import is_artifact, load


def pretrained_dir() -> Path:
    return Path(str(resources.files("deepslim") / "pretrained"))


# Pretrained models that live in an optional package, not in an artifact folder here.
EXTERNAL = ("minilm-l6",)


def shipped_baselines() -> list[str]:
    """Names of the baselines saved inside the package (deepslim artifacts, Fashion-MNIST classifiers)."""
    root = pretrained_dir()
    return sorted(p.name for p in root.iterdir() if is_artifact(p)) if root.is_dir() else []


def list_pretrained() -> list[str]:
    """Names ``load_pretrained`` takes: the shipped baselines and ``minilm-l6`` (needs the ``text`` extra).

    Example:
        >>> "fmnist-resnet" in list_pretrained(), "minilm-l6" in list_pretrained()   # doctest: +SKIP
        (True, True)
    """
    return sorted([*shipped_baselines(), *EXTERNAL])


def pretrained_path(name: str) -> Path:
    """The folder holding ``name``'s files (for ``minilm-l6``, the package's; a path that does not
    exist when the extra is missing, so comparing folders never needs the extra)."""
    if name not in list_pretrained():
        raise unknown_name_error("pretrained model", name, list_pretrained())
    if name == "minilm-l6":
        from ..text.minilm import package_model_dir

        return package_model_dir() or pretrained_dir() / name
    return pretrained_dir() / name


def load_pretrained(name: str, *, device="cpu") -> nn.Module:
    """Load a pretrained model by name; no network is used.

    Example:
        >>> model = load_pretrained("fmnist-resnet")   # doctest: +SKIP
        >>> embedder = load_pretrained("minilm-l6")    # doctest: +SKIP
    """
    path = pretrained_path(name)
    if name == "minilm-l6":
        from ..text.minilm import load_minilm

        return load_minilm(device=device)
    return load(path, device=device)
