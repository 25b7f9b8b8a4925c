"""Checks shared by the supernet trainers (progressive shrinking, ENAS): the training splits, and a
checkpoint that may be resumed only by the same space and config."""

from __future__ import annotations

from pathlib import Path

from ..core import DeepslimError
from ..data import TensorData
from ..train.checkpoint import load_checkpoint


def check_splits(trainer: str, batch_size: int, config_name: str, **splits) -> None:
    """Every split a ``TensorData``, and the training split at least one batch."""
    for name, split in splits.items():
        if not isinstance(split, TensorData):
            raise DeepslimError(f"{trainer} trains on TensorData, got {type(split).__name__} for {name}",
                                hint="pass splits of deepslim.load_dataset(...), e.g. data.train")
    train = splits["train"]
    if len(train) < batch_size:
        raise DeepslimError(f"the training split has {len(train)} samples, fewer than batch_size={batch_size}",
                            hint=f"lower {config_name}.batch_size")


def resume_state(path: Path, identity: dict, config_name: str) -> dict:
    """The checkpoint at ``path``, refused unless written for ``identity["space"]`` and ``identity["config"]``."""
    state = load_checkpoint(path)
    if state.get("space") != identity["space"]:
        raise DeepslimError(f"{path} was written for another search space ({state.get('space', {}).get('name')}"
                            f" with other options)", hint="resume with the supernet it was written for, or "
                                                          "start again without resume")
    if state.get("config") != identity["config"]:
        raise DeepslimError(f"{path} was written with another {config_name}",
                            hint="resume with the same config, or start again without resume")
    return state
