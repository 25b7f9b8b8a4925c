"""Small deterministic data for unit tests: one noisy prototype image per class."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .registry import register_dataset
from .splits import DataSplits, TensorData, split_train_val


@register_dataset("synthetic", input_shape=(1, 28, 28), num_classes=10)
def synthetic(*, subset=None, val_fraction=1 / 12, seed=0, num_classes: int = 10, channels: int = 1,
              image_size: int = 28, train_size: int = 1200, test_size: int = 400, noise: float = 0.5) -> DataSplits:
    """Learnable toy images: a fixed random prototype per class plus Gaussian noise."""
    g = torch.Generator().manual_seed(1234)
    coarse = torch.randn(num_classes, channels, 7, 7, generator=g)
    # Smooth and mirror-symmetric prototypes, so flip/crop augmentation keeps the classes apart.
    prototypes = F.interpolate(coarse, size=(image_size, image_size), mode="bilinear", align_corners=False)
    prototypes = 2.0 * (prototypes + prototypes.flip(-1)) / 2

    def make(n: int, offset: int) -> tuple[torch.Tensor, torch.Tensor]:
        gen = torch.Generator().manual_seed(1234 + offset)
        labels = torch.arange(n) % num_classes
        images = prototypes[labels] + noise * torch.randn(n, channels, image_size, image_size, generator=gen)
        return images.float(), labels.long()

    train_x, train_y = make(train_size, 1)
    test_x, test_y = make(test_size, 2)
    train, val = split_train_val(train_x, train_y, subset=subset, val_fraction=val_fraction, seed=seed)
    names = [f"class{i}" for i in range(num_classes)]
    return DataSplits("synthetic", train, val, TensorData(test_x, test_y), num_classes, names,
                      (0.0,) * channels, (1.0,) * channels,
                      options={"subset": subset, "val_fraction": val_fraction, "seed": seed,
                               "num_classes": num_classes, "channels": channels, "image_size": image_size,
                               "train_size": train_size, "test_size": test_size, "noise": noise})
