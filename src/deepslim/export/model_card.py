"""A human-readable MODEL_CARD.md written from an artifact's metadata."""

from __future__ import annotations

from pathlib import Path

from ..core import cpu_name
from .artifact import read_metadata
from .files import write_atomic


def write_model_card(path: str | Path) -> Path:
    """Write ``MODEL_CARD.md`` into the artifact folder ``path`` from its metadata."""
    import os

    path = Path(path)
    meta = read_metadata(path)
    m, t, d = meta.get("metrics", {}), meta.get("training", {}), meta.get("dataset", {})
    cfg = t.get("config", {})
    lines = [f"# {meta.get('model')} trained on {d.get('name')}", "",
             f"- Parameters: {meta.get('params'):,}",
             f"- Model options: `{meta.get('model_kwargs')}`",
             f"- Test accuracy (top-1, all {m.get('test_images')} test images): **{m.get('test_accuracy', 0):.2f}%**",
             f"- Validation accuracy ({d.get('sizes', {}).get('val')} images held out of train): "
             f"{m.get('val_accuracy', float('nan')):.2f}%",
             f"- Training: {cfg.get('epochs')} epochs, {cfg.get('optimizer')} lr {cfg.get('lr')}, "
             f"{cfg.get('schedule')} schedule, batch {cfg.get('batch_size')}, weight decay {cfg.get('weight_decay')}, "
             f"label smoothing {cfg.get('label_smoothing')}, augmentation {'flip+crop' if cfg.get('augment') else 'none'}, "
             f"seed {cfg.get('seed')}",
             f"- Command: `{t.get('command')}`",
             f"- Training time: {t.get('train_seconds', 0) / 60:.1f} min of epochs on {t.get('device')} "
             f"({cpu_name()}, {os.cpu_count()} cores), torch {meta.get('versions', {}).get('torch')}",
             f"- Saved: {meta.get('saved_at')}", ""]
    write_atomic(path / "MODEL_CARD.md", lambda p: p.write_text("\n".join(lines)))
    return path / "MODEL_CARD.md"
