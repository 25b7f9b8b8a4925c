"""Turn `--model NAME` or a folder argument into a model plus what is known about it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from torch import nn

from ..core import DeepslimError
from ..core.registry import near_matches
from ..export import list_pretrained, load, load_pretrained
from ..export.pretrained import pretrained_path
from ..models import create_model, list_models


@dataclass
class ResolvedModel:
    model: nn.Module
    label: str
    artifact_dir: Path | None
    input_shape: tuple | None


def resolve_model(name: str | None, directory: Path | None, model_kwargs: dict | None = None) -> ResolvedModel:
    """A shipped baseline or zoo model by name, or a saved model folder."""
    if (name is None) == (directory is None):
        raise DeepslimError("give either a saved model folder or --model NAME", hint="e.g. --model fmnist-resnet")
    if directory is not None:
        model = load(directory)
        shape = model.deepslim_metadata.get("input_shape")
        return ResolvedModel(model, str(directory), directory, tuple(shape) if shape else None)
    if name in list_pretrained():
        model = load_pretrained(name)
        shape = model.deepslim_metadata.get("input_shape")
        return ResolvedModel(model, name, pretrained_path(name), tuple(shape) if shape else None)
    if name in list_models():
        kwargs = dict(model_kwargs or {})
        model = create_model(name, **kwargs)
        return ResolvedModel(model, name, None, (1, kwargs.get("in_channels", 1), 28, 28))
    choices = sorted(set(list_pretrained()) | set(list_models()))
    close = near_matches(name, choices)
    hint = (f"did you mean {', '.join(repr(c) for c in close)}? " if close else "") + f"valid: {', '.join(choices)}"
    raise DeepslimError(f"unknown model '{name}' (neither a shipped baseline nor a zoo model)", hint=hint)


def add_model_source_args(parser: argparse.ArgumentParser) -> None:
    """DIR (a saved model) or --model NAME (a shipped baseline or zoo model) with --model-arg options."""
    parser.add_argument("model_dir", nargs="?", type=Path, metavar="DIR", help="saved model folder")
    parser.add_argument("--model", help="shipped baseline (e.g. fmnist-resnet) or zoo model name instead of DIR")
    parser.add_argument("--model-arg", action="append", metavar="KEY=VALUE", help="zoo model option, repeatable")
