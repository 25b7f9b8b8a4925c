import torch

from deepslim.data import Augment, BatchLoader, TensorData, load_dataset


def test_batches_cover_the_data_once():
    data = load_dataset("synthetic", subset=100).train
    labels = torch.cat([y for _, y in BatchLoader(data, 32, shuffle=True)])
    assert len(labels) == len(data)
    assert sorted(labels.tolist()) == sorted(data.labels.tolist())


def test_order_is_a_function_of_seed_and_epoch():
    data = load_dataset("synthetic", subset=100).train
    a, b = BatchLoader(data, 16, shuffle=True, seed=1), BatchLoader(data, 16, shuffle=True, seed=1)
    a.set_epoch(2), b.set_epoch(2)
    assert all(torch.equal(x1, x2) for (x1, _), (x2, _) in zip(a, b))
    b.set_epoch(3)
    assert not torch.equal(next(iter(a))[1], next(iter(b))[1])


def test_crop_shifts_and_flip_mirrors():
    images = torch.arange(2 * 1 * 4 * 4, dtype=torch.float32).view(2, 1, 4, 4)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(Augment(flip=False, crop_padding=0)(images, g), images)
    cropped = Augment(flip=False, crop_padding=1)(images, g)
    assert cropped.shape == images.shape
    # each crop is the image shifted by at most one pixel, zeros shifted in
    for orig, out in zip(images, cropped):
        padded = torch.nn.functional.pad(orig, (1, 1, 1, 1))
        windows = [padded[:, i:i + 4, j:j + 4] for i in range(3) for j in range(3)]
        assert any(torch.equal(out, w) for w in windows)
    flipped = [Augment(flip=True, crop_padding=0)(images, torch.Generator().manual_seed(s)) for s in range(8)]
    assert any(torch.equal(f, images.flip(-1)) or torch.equal(f[0], images[0].flip(-1)) for f in flipped)
    assert all(torch.equal(f[0], images[0]) or torch.equal(f[0], images[0].flip(-1)) for f in flipped)


def test_tensor_data_rejects_bad_shapes():
    import pytest

    with pytest.raises(ValueError):
        TensorData(torch.zeros(3, 28, 28), torch.zeros(3))
