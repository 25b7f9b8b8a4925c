"""``run_finalists``: the loop of picks and full runs, with the full runs and their timing faked (the real ones
run end to end in test_run.py): an extension gets its own folder, its estimate from its original's run, and is
timed with the others, and goes before a slower pick."""

import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from deepslim.auto import finalists as fin
from deepslim.auto.picking import FinalistPicker
from deepslim.auto.result import choose
from deepslim.auto.space import ImageSpace
from deepslim.auto.target import parse_target

PLAN = {"ratio": 0.4, "allocation": "global", "round_to": 16, "factorize": "none", "quantize": "qat"}


def _row(trial, drop, speedup, epochs):
    return {"trial": trial, "accuracy": 95.0 - drop, "drop": drop, "value": speedup, "speedup": speedup,
            "ort_latency_ms": 1 / speedup, "plan": {**PLAN, "ratio": 0.3 + trial / 20, "epochs": epochs}, "repeat_of": None, "retimed": {},
            "seconds": 30.0, "description": "d"}


@pytest.mark.parametrize("extension_drop", [0.4, 0.7])
def test_a_faster_near_miss_runs_again_with_twice_the_epochs_before_the_next_pick(monkeypatch, tmp_path,
                                                                                   extension_drop):
    full_drops = {"finalists/trial-0001": 0.8, "finalists/trial-0002": 0.45, "finalists/trial-0001-ep20": extension_drop,
                  "finalists/trial-0001-ep40": 0.35, "finalists/trial-0002-ep20": 0.5}
    ran = []

    def fake_run(model, data, space, row, folder, **kw):
        name = str(Path(folder).relative_to(tmp_path))
        ran.append((name, row["plan"]["epochs"]))
        return {"baseline": {"accuracy": 95.0}, "final": {"accuracy": 95.0 - full_drops[name], "size_bytes": 1000,
                                                          "macs": 1e6}, "run_seconds": 600.0}

    def fake_timing(out, baseline_onnx, finished, cases, seconds):
        speed = {1: 3.3, 2: 2.7}
        return {f["folder"]: {"1": {"speedup": speed[f["trial"]], "speedup_min": 3.0, "speedup_max": 3.5,
                                    "candidate_ms": 1.0, "baseline_ms": 3.0}} for f in finished}

    monkeypatch.setattr(fin, "run_finalist", fake_run)
    monkeypatch.setattr(fin, "time_together", fake_timing)
    monkeypatch.setattr(fin, "_full_task", lambda proxy, data: SimpleNamespace(latency_cases=lambda: [(1, None)]))
    rows = [_row(1, 3.1, 3.3, 10), _row(2, 1.3, 2.7, 10), _row(3, 6.0, 4.0, 10)]
    target = parse_target("speedup>=6")
    picker = FinalistPicker(rows, target, max_drop=0.5, slack=3.0)
    config = SimpleNamespace(top_k=2,  # the extension comes on top of the plans
                             proxy_images=64, proxy_epoch_scale=0.15, max_drop=0.5, final_latency_seconds=0.1,
                             batch=1)
    state = {"baseline_proxy": {"seconds": 5.0}, "train_estimate_s": 10.0}
    data = SimpleNamespace(train=range(640))
    result = fin.run_finalists(None, data, ImageSpace(), picker, tmp_path, config, None, time.time() + 1e6, state,
                               None, lambda: None, "", {})
    # trial 1 (3.3x) lost 0.8: its extension goes before trial 2 (2.7x, predicted to keep the bound: 1.3 x 0.26);
    # when the extension keeps the bound nothing else is faster, and when it misses, trial 2 still runs; then the
    # keeper to publish runs again with twice its epochs (the polish)
    expected = [("finalists/trial-0001", 10), ("finalists/trial-0001-ep20", 20)]
    assert ran == expected + ([("finalists/trial-0002", 10), ("finalists/trial-0002-ep20", 20)] if extension_drop > 0.5
                              else [("finalists/trial-0001-ep40", 40)])
    assert result[-1]["pick"]["polish"] and result[-1]["estimate_s"] == 600.0 * (4 if extension_drop < 0.5 else 2)
    # the longer run is published only if it lost less: trial 1 at 40 epochs did (0.35); trial 2 at 20 did not (0.5)
    best, _ = choose(result, target, 0.5)
    assert best["folder"] == ("finalists/trial-0001-ep40" if extension_drop < 0.5 else "finalists/trial-0002")
    extension = result[1]
    assert extension["pick"]["extends"] == 1 and extension["estimate_s"] == 1200.0  # 600 s for 10 epochs, doubled
    assert "KD 20 ep" in extension["description"] and extension["proxy"]["plan"]["epochs"] == 10
    assert extension["measured"]["drop"] == extension_drop and extension["measured"]["speedup"] == 3.3
    assert result[0]["measured"]["run_seconds"] == 600.0
