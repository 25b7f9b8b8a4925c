"""Fashion-MNIST (Xiao et al., 2017) from the IDX files Debian's ``dataset-fashion-mnist`` installs."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..core import DeepslimError
from .idx import read_idx
from .registry import register_dataset
from .splits import DataSplits, TensorData, normalise, split_train_val

DEFAULT_DIR = Path("/usr/share/datasets/fashion-mnist")
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]
# Mean and std of the 60,000 training images, the usual published constants.
MEAN, STD = (0.2860,), (0.3530,)
HOW_TO_GET = ("install them with `sudo apt-get update && sudo apt-get install -y dataset-fashion-mnist`, "
              "or pass --data-dir pointing at a folder holding the four *-ubyte(.gz) files")


def default_data_dir() -> Path:
    """``$DEEPSLIM_FASHION_MNIST`` if set, else Debian's install location."""
    return Path(os.environ.get("DEEPSLIM_FASHION_MNIST", DEFAULT_DIR))


def find_file(data_dir: Path, stem: str) -> Path:
    for candidate in (data_dir / f"{stem}.gz", data_dir / stem):
        if candidate.is_file():
            return candidate
    raise DeepslimError(f"Fashion-MNIST file {stem}(.gz) not found in {data_dir}", hint=HOW_TO_GET)


def read_split(data_dir: Path, which: str) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(find_file(data_dir, FILES[f"{which}_images"]))
    labels = read_idx(find_file(data_dir, FILES[f"{which}_labels"]))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DeepslimError(f"Fashion-MNIST {which} files in {data_dir} do not match: images {images.shape}, "
                            f"labels {labels.shape}", hint=HOW_TO_GET)
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype("int64"))


@register_dataset("fashion-mnist", input_shape=(1, 28, 28), num_classes=10)
def fashion_mnist(*, subset=None, val_fraction=1 / 12, seed=0, data_dir: str | Path | None = None) -> DataSplits:
    """Fashion-MNIST: 60,000 train / 10,000 test 28x28 grey images of 10 clothing classes."""
    root = Path(data_dir) if data_dir else default_data_dir()
    if not root.is_dir():
        raise DeepslimError(f"Fashion-MNIST folder {root} does not exist", hint=HOW_TO_GET)
    train_x, train_y = read_split(root, "train")
    test_x, test_y = read_split(root, "test")
    train, val = split_train_val(normalise(train_x, MEAN, STD), train_y, subset=subset,
                                 val_fraction=val_fraction, seed=seed)
    test = TensorData(normalise(test_x, MEAN, STD), test_y)
    return DataSplits("fashion-mnist", train, val, test, 10, CLASS_NAMES, MEAN, STD,
                      options={"subset": subset, "val_fraction": val_fraction, "seed": seed})
