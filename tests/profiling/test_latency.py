import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.profiling import compare_latency, measure_latency

# Latency here is CPU latency (torch's CPU threads, ONNX Runtime's CPU provider): a CUDA run has nothing to add.
pytestmark = pytest.mark.cpu_only(reason="times torch and ONNX Runtime on the CPU")


def test_measure_latency_covers_every_runtime_and_batch_size(tmp_path):
    model = deepslim.create_model("lenet5")
    rows = measure_latency(model, torch.randn(1, 1, 28, 28), batch_sizes=(1, 4), min_seconds=0.05, warmup=2,
                           min_repeats=3, threads=1)
    assert {(r.runtime, r.batch_size) for r in rows} == {("torch", 1), ("torch", 4), ("onnxruntime", 1),
                                                         ("onnxruntime", 4)}
    for r in rows:
        assert r.repeats >= 3 and r.threads == 1
        assert 0 < r.p25_ms <= r.median_ms <= r.p75_ms
        assert r.to_dict()["iqr_ms"] == pytest.approx(r.p75_ms - r.p25_ms)


def test_onnx_files_are_timed_on_onnxruntime_only(tmp_path):
    model = deepslim.create_model("lenet5")
    path = tmp_path / "m.onnx"
    deepslim.export_onnx(model, path, torch.randn(1, 1, 28, 28))
    rows = measure_latency(path, torch.randn(1, 1, 28, 28), batch_sizes=(2,), runtimes=("onnxruntime",),
                           min_seconds=0.01, warmup=1, min_repeats=2)
    assert rows[0].runtime == "onnxruntime" and rows[0].batch_size == 2
    with pytest.raises(DeepslimError, match="only be timed on onnxruntime"):
        measure_latency(path, torch.randn(1, 1, 28, 28), runtimes=("torch",))
    with pytest.raises(DeepslimError, match="unknown runtime"):
        measure_latency(model, torch.randn(1, 1, 28, 28), runtimes=("tensorrt",))


def test_compare_latency_reports_ratio_and_spread():
    big, small = deepslim.create_model("resnet8"), deepslim.create_model("lenet5")
    rows = compare_latency(big, small, torch.randn(1, 1, 28, 28), batch_sizes=(1,), runtimes=("torch",),
                           min_seconds=0.05, warmup=2, calls_per_round=2)
    r = rows[0]
    assert r.rounds >= 5 and r.speedup_min <= r.speedup <= r.speedup_max
    assert r.baseline_ms > 0 and r.candidate_ms > 0


def test_compare_latency_on_onnxruntime_takes_settled_turns(monkeypatch):
    import deepslim.profiling.latency as latency

    turns = []
    real = latency._take_turn
    monkeypatch.setattr(latency, "_take_turn", lambda run, calls, ms, n: turns.append((calls, ms, n)) or real(run, calls, ms, n))
    big, small = deepslim.create_model("resnet8"), deepslim.create_model("lenet5")
    (row,) = compare_latency(big, small, torch.randn(1, 1, 28, 28), batch_sizes=(1,), runtimes=("onnxruntime",),
                             min_seconds=0.05, warmup=2, settle_ms=1.0, turn_ms=2.0)
    assert row.runtime == "onnxruntime" and row.rounds >= 5 and row.speedup_min <= row.speedup <= row.speedup_max
    timed = [t for t in turns if t[1] > 0]  # the warm-up turns take no pause
    assert len(timed) == 2 * row.rounds and all(ms == 1.0 and n == 2 and calls >= 5 for calls, ms, n in timed)
