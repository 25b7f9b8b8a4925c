import pytest

from deepslim.train import lr_at


def test_cosine_starts_at_base_and_ends_near_zero():
    assert lr_at(0, 100, 0.1, "cosine") == pytest.approx(0.1)
    assert lr_at(50, 100, 0.1, "cosine") == pytest.approx(0.05)
    assert lr_at(100, 100, 0.1, "cosine") == pytest.approx(0.0)


def test_warmup_ramps_linearly():
    assert lr_at(0, 100, 0.1, "cosine", warmup_steps=10) == pytest.approx(0.01)
    assert lr_at(9, 100, 0.1, "constant", warmup_steps=10) == pytest.approx(0.1)


def test_onecycle_peaks_at_thirty_percent():
    lrs = [lr_at(s, 100, 0.1, "onecycle") for s in range(100)]
    assert max(lrs) == pytest.approx(0.1) and lrs.index(max(lrs)) == 30
    assert lrs[0] == pytest.approx(0.1 / 25) and lrs[-1] < 0.001
