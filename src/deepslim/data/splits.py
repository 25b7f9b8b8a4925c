"""In-memory image data sets and the train/val/test bundle every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch.utils.data import Dataset


class TensorData(Dataset):
    """Normalised images ``(N, C, H, W)`` float32 and labels ``(N,)`` int64, held in memory.

    Also a ``torch.utils.data.Dataset``, so it works with a plain ``DataLoader``.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor):
        if images.ndim != 4:
            raise ValueError(f"images must be (N, C, H, W), got shape {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images = images
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]

    def take(self, indices: torch.Tensor) -> "TensorData":
        return TensorData(self.images[indices], self.labels[indices])


@dataclass
class DataSplits:
    """A data set split three ways, with what a model and a deployment need to know about it."""

    name: str
    train: TensorData
    val: TensorData
    test: TensorData
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    options: dict = field(default_factory=dict)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of one image."""
        return tuple(self.test.images.shape[1:])  # type: ignore[return-value]

    def describe(self) -> dict:
        """JSON-friendly summary stored in artifact metadata."""
        return {
            "name": self.name,
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "mean": list(self.mean),
            "std": list(self.std),
            "sizes": {"train": len(self.train), "val": len(self.val), "test": len(self.test)},
            "options": self.options,
        }


def split_train_val(images: torch.Tensor, labels: torch.Tensor, *, subset: int | None, val_fraction: float,
                    seed: int) -> tuple[TensorData, TensorData]:
    """Shuffle the training pool with a fixed seed, keep ``subset`` of it, carve off a validation part."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(labels), generator=generator)
    if subset is not None:
        order = order[:subset]
    n_val = int(round(len(order) * val_fraction))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return TensorData(images[train_idx], labels[train_idx]), TensorData(images[val_idx], labels[val_idx])


def normalise(images_uint8: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 ``(N, C, H, W)`` -> float32 standardised per channel."""
    x = images_uint8.float().div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s)
