import torch

from deepslim.auto.trial import proxy_data
from deepslim.data import load_dataset


def test_proxy_data_trains_on_a_subset_and_scores_on_validation():
    data = load_dataset("synthetic", subset=256)
    proxy = proxy_data(data, 64)
    assert len(proxy.train) == 64 and torch.equal(proxy.train.images, data.train.images[:64])
    assert proxy.test is data.val  # the search never sees the test split
    assert proxy.options["subset"] == 64 and proxy.options["proxy"]
    assert len(data.train) > 64  # the input is untouched
