import json
import re
import shutil
import subprocess

import pytest

from deepslim.core import DeepslimError
from deepslim.pipeline.report import render_report, summary_line, write_report


def _metrics():
    def entry(acc, macs, size, b1, b64, torch=True):
        lat = {"onnxruntime": {"1": b1, "64": b64}}
        if torch:
            lat["torch"] = {"1": 2 * b1, "64": 2 * b64}
        return {"accuracy": acc, "macs": macs, "params": macs // 40, "size_bytes": size, "latency_ms": lat}

    base = entry(94.6, 51_800_000, 4_900_000, 0.56, 31.0) | {"layer_macs": {"conv": 40_000_000, "fc": 11_800_000}}
    s1 = entry(94.3, 25_000_000, 1_600_000, 0.30, 16.0) | {"index": 1, "name": "prune", "technique": "channel_pruning"}
    s2 = entry(94.2, 25_000_000, 420_000, 0.14, 7.0, torch=False) | {"index": 2, "name": "int8", "technique": "quantize"}
    final = dict(s2) | {"layer_macs": {"conv.0": 10_000_000, "conv.1": 9_000_000, "fc": 6_000_000}}
    return {"recipe": "r", "source": "fmnist-resnet", "baseline": base, "stages": [s1, s2], "final": final,
            "environment": {"cpu": "test"}}


def test_summary_line_numbers():
    # A run recorded before interleaved comparisons: the medians' ratio, said to have no measured spread.
    assert summary_line(_metrics()) == (
        "onnxruntime: 4.00x lower median latency at batch 1, 4.43x at batch 64 (timed separately, spread not "
        "measured); -0.40 points accuracy; 11.7x smaller (ONNX file, 4.90 MB -> 420 KB)")


def test_report_is_self_contained_and_rebuilt_from_metrics(tmp_path):
    page = render_report(_metrics())
    assert page.count("data:image/png;base64,") == 3
    assert not re.search(r"(src|href)=\"https?:", page)
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics()))
    assert write_report(tmp_path).read_text() == page
    (tmp_path / "metrics.json").write_text(json.dumps({"baseline": {}, "stages": []}))
    with pytest.raises(DeepslimError, match="unfinished"):
        write_report(tmp_path)


def test_report_renders_with_its_plots_in_headless_chromium(tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (make test installs it when run as root)")
    (tmp_path / "metrics.json").write_text(json.dumps(_metrics()))
    page = write_report(tmp_path)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=3000",
             f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([browser, *flags, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert 'data-plots-loaded="3"' in dom.stdout  # every inlined plot decoded into an image
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, "--window-size=1280,1900", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.read_bytes()[:4] == b"\x89PNG" and shot.stat().st_size > 20_000
