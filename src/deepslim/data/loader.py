"""Batches from in-memory data, with vectorised flip/crop augmentation.

Why not ``torch.utils.data.DataLoader`` with per-sample transforms: the whole data set
fits in memory, and augmenting a batch at once is many times faster on 2 CPU cores than
Python-level per-image transforms. The shuffle order is a function of (seed, epoch), so
training resumed from a checkpoint sees exactly the batches it would have seen.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.inputs import to_device
from .splits import TensorData


@dataclass
class Augment:
    """Random horizontal flip and random crop after zero-padding by ``crop_padding`` pixels."""

    flip: bool = True
    crop_padding: int = 2

    def __call__(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, _, h, w = images.shape
        if self.crop_padding > 0:
            p = self.crop_padding
            padded = F.pad(images, (p, p, p, p))
            dy = torch.randint(0, 2 * p + 1, (n,), generator=generator)
            dx = torch.randint(0, 2 * p + 1, (n,), generator=generator)
            rows = (dy[:, None] + torch.arange(h)[None, :])[:, None, :, None]
            cols = (dx[:, None] + torch.arange(w)[None, :])[:, None, None, :]
            batch = torch.arange(n)[:, None, None, None]
            chan = torch.arange(images.shape[1])[None, :, None, None]
            images = padded[batch, chan, rows, cols]
        if self.flip:
            flip = torch.rand(n, generator=generator) < 0.5
            images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        return images


class BatchLoader:
    """Iterate ``(images, labels)`` batches on ``device``.

    Example:
        >>> from deepslim.data import load_dataset
        >>> data = load_dataset("synthetic", subset=100)
        >>> x, y = next(iter(BatchLoader(data.train, batch_size=32, shuffle=True)))
        >>> x.shape
        torch.Size([32, 1, 28, 28])
    """

    def __init__(self, data: TensorData, batch_size: int = 128, *, shuffle: bool = False,
                 augment: Augment | None = None, seed: int = 0, drop_last: bool = False,
                 device: torch.device | str = "cpu"):
        self.data = data
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.augment = augment
        self.seed = seed
        self.drop_last = drop_last
        self.device = torch.device(device)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        n = len(self.data)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        n = len(self.data)
        order = torch.randperm(n, generator=generator) if self.shuffle else torch.arange(n)
        for start in range(0, n, self.batch_size):
            idx = order[start:start + self.batch_size]
            if self.drop_last and len(idx) < self.batch_size:
                break
            self.batch_indices = idx  # which samples the batch holds (e.g. to look up cached teacher outputs)
            images, labels = self.data.images[idx], self.data.labels[idx]
            if self.augment is not None:
                images = self.augment(images, generator)
            yield to_device(images, self.device), to_device(labels, self.device)
