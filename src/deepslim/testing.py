"""Shared toy models and tiny data for deepslim's tests (and for users' own tests)."""

from __future__ import annotations

import torch
from torch import nn

from .core import SerializableModule
from .data import DataSplits, load_dataset


def tiny_data(n_train: int = 240, seed: int = 0) -> DataSplits:
    """A small, learnable, deterministic data set: 1x28x28 images, 10 classes."""
    return load_dataset("synthetic", subset=n_train, seed=seed)


class ToyResidual(SerializableModule):
    """Conv stem, one residual block and a concat branch: the graph shapes later techniques must handle."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(width, width, 3, padding=1), nn.BatchNorm2d(width))
        self.branch = nn.Conv2d(width, width, 1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        x = torch.relu(x + self.body(x))
        x = torch.cat([x, self.branch(x)], dim=1)
        return self.fc(self.pool(x).flatten(1))


def toy_mlp(in_features: int = 784, hidden: int = 32, num_classes: int = 10) -> nn.Module:
    """Flatten -> Linear -> ReLU -> Linear."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden), nn.ReLU(), nn.Linear(hidden, num_classes))


class ImageAndFeatures(nn.Module):
    """Two positional inputs: a conv over a (3, H, W) image and a linear over 6 features, summed into 3 logits."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 5, 3)
        self.extra = nn.Linear(6, 5)
        self.head = nn.Linear(5, 3)

    def forward(self, image, features):
        return self.head(self.conv(image).mean((2, 3)) + self.extra(features))
