"""`pytest --device cuda` / DEEPSLIM_TEST_DEVICE: refused without a GPU; with one, `cpu_only` tests are skipped.

Runs pytest in a subprocess on this repository's tests; a GPU is simulated by a plugin that makes
torch.cuda.is_available() say yes, and only `cpu_only` tests are collected, so no CUDA call is made.
"""

import os
import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).parents[1]


def _pytest(*args, env=None, plugin_dir=None):
    env = {**os.environ, **(env or {})}
    env.pop("PYTEST_XDIST_WORKER", None)
    if plugin_dir:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(plugin_dir), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def test_cuda_without_a_gpu_is_a_usage_error():
    if torch.cuda.is_available():
        return  # on a GPU machine --device cuda is accepted
    for args, env in [(("--device", "cuda"), None), ((), {"DEEPSLIM_TEST_DEVICE": "cuda"})]:
        done = _pytest(*args, "tests/core/test_device.py", env=env)
        assert done.returncode == 4 and "--device cuda: no CUDA GPU is available here" in done.stderr


def test_cpu_only_tests_are_skipped_on_cuda_with_their_reason(tmp_path):
    (tmp_path / "fake_gpu.py").write_text("import torch\ntorch.cuda.is_available = lambda: True\n")
    done = _pytest("-p", "fake_gpu", "--device", "cuda", "-rs", "tests/profiling/test_latency.py", plugin_dir=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "cpu_only: times torch and ONNX Runtime on the CPU" in done.stdout and " skipped" in done.stdout
