import pytest
import torch

from deepslim.core import DeepslimError
from deepslim.data import load_dataset


def test_full_splits_and_normalisation(fashion_mnist_dir):
    data = load_dataset("fashion-mnist", data_dir=fashion_mnist_dir)
    assert (len(data.train), len(data.val), len(data.test)) == (55000, 5000, 10000)
    assert data.input_shape == (1, 28, 28) and data.num_classes == 10
    assert abs(data.train.images.mean().item()) < 0.05 and abs(data.train.images.std().item() - 1) < 0.05
    assert torch.bincount(data.test.labels).tolist() == [1000] * 10


def test_subset_and_validation_split_are_seeded(fashion_mnist_dir):
    a = load_dataset("fashion-mnist", subset=1200, seed=3)
    b = load_dataset("fashion-mnist", subset=1200, seed=3)
    c = load_dataset("fashion-mnist", subset=1200, seed=4)
    assert len(a.train) + len(a.val) == 1200 and len(a.test) == 10000
    assert torch.equal(a.val.labels, b.val.labels) and torch.equal(a.train.images, b.train.images)
    assert not torch.equal(a.train.images, c.train.images)


def test_missing_folder_says_how_to_get_the_data(tmp_path):
    with pytest.raises(DeepslimError) as err:
        load_dataset("fashion-mnist", data_dir=tmp_path / "nowhere")
    assert "apt-get install -y dataset-fashion-mnist" in err.value.hint
    with pytest.raises(DeepslimError, match="not found"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


def test_unknown_data_set_lists_valid_names():
    with pytest.raises(DeepslimError) as err:
        load_dataset("fashion-mnst")
    assert "fashion-mnist" in err.value.hint and "synthetic" in err.value.hint
