"""The predictor-quality yardsticks: % errors, share within +-10 %, Kendall's tau with and without scipy."""

import pytest

from deepslim.nas.latency_quality import kendall_tau, quality_metrics


def test_quality_metrics_and_kendall_tau():
    q = quality_metrics([1.0, 2.0, 3.0, 4.8], [1.0, 2.1, 3.0, 4.0])
    assert q["n"] == 4 and q["within_10_percent"] == 75.0
    assert q["mean_abs_percent_error"] == pytest.approx((0 + 0.1 / 2.1 * 100 + 0 + 20) / 4)
    assert q["kendall_tau"] == pytest.approx(1.0)
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)


def test_kendall_tau_without_scipy(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    assert kendall_tau([1, 2, 3, 4], [10, 20, 40, 30]) == pytest.approx(4 / 6)
    assert kendall_tau([1, 1, 2, 3], [1, 2, 2, 3]) == pytest.approx(4 / 5)  # tau-b with ties
