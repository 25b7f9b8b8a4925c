"""--device: cuda without a GPU and cuda:N beyond the GPUs present are refused in one line, before any work.

No GPU is needed: torch.cuda.is_available / device_count are monkeypatched to describe the machine.
"""

import re

import pytest
import torch

from deepslim.core import DeepslimError
from deepslim.core.device import resolve_device


def _machine(monkeypatch, gpus: int):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_auto_is_cpu_without_a_gpu_and_cuda_with_one(monkeypatch):
    _machine(monkeypatch, 0)
    assert resolve_device("auto") == torch.device("cpu")
    _machine(monkeypatch, 1)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda:0")


def test_cuda_without_a_gpu_is_refused(monkeypatch):
    _machine(monkeypatch, 0)
    with pytest.raises(DeepslimError, match="--device cuda was asked for but no CUDA GPU is available") as info:
        resolve_device("cuda")
    assert "--device cpu" in info.value.hint


@pytest.mark.parametrize("gpus, message", [(1, "names GPU 7, but this machine has 1 GPU (cuda:0)"),
                                           (2, "names GPU 2, but this machine has 2 GPUs (cuda:0..cuda:1)")])
def test_an_index_beyond_the_gpus_is_refused_naming_index_and_count(monkeypatch, gpus, message):
    _machine(monkeypatch, gpus)
    with pytest.raises(DeepslimError, match=re.escape(f"--device cuda:{7 if gpus == 1 else 2} {message}")):
        resolve_device(f"cuda:{7 if gpus == 1 else 2}")


def test_unknown_device_is_refused():
    with pytest.raises(DeepslimError, match="unknown device 'gpu'"):
        resolve_device("gpu")


@pytest.mark.parametrize("gpus, device, message", [(0, "cuda", "no CUDA GPU is available"),
                                                   (1, "cuda:7", "names GPU 7, but this machine has 1 GPU")])
def test_train_refuses_in_one_line_and_writes_nothing(cli, monkeypatch, tmp_path, gpus, device, message):
    _machine(monkeypatch, gpus)
    out = tmp_path / "run"
    code, _, err = cli("train", "--model", "lenet5", "--data", "synthetic", "--epochs", "1", "--device", device,
                       "--out", out)
    assert code != 0 and message in _one_line(err)
    assert not out.exists()


def test_compress_refuses_before_loading_anything(cli, monkeypatch, tmp_path):
    _machine(monkeypatch, 1)
    out = tmp_path / "c"
    code, _, err = cli("compress", "--model", "lenet5", "--data", "synthetic", "--recipe", "recipes/gpu-check.yaml",
                       "--device", "cuda:7", "--out", out)
    assert code != 0 and "names GPU 7, but this machine has 1 GPU" in _one_line(err)
    assert not out.exists()
