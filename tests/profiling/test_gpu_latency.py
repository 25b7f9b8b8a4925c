"""GPU latency: the CUDA runtimes time with CUDA events and leave the caller's model alone; without a
GPU (or without onnxruntime-gpu) they are refused in one line before any work.

The GPU tests run under `pytest --device cuda` (scripts/gpu_check.sh) and skip on the CPU."""

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.profiling.gpu_latency import GPU_RUNTIMES, TORCH_GPU_RUNTIMES, gpu_runtimes_here, ort_cuda_available
from deepslim.profiling.latency import compare_latency, measure_latency

X = torch.randn(1, 1, 28, 28)


@pytest.fixture
def cuda(device):
    if device.type != "cuda":
        pytest.skip("needs a GPU: run with --device cuda")
    return device


def test_gpu_runtimes_are_refused_in_one_line_where_they_cannot_run():
    model = deepslim.create_model("lenet5")
    if not torch.cuda.is_available():
        assert gpu_runtimes_here() == ()
        for runtime in GPU_RUNTIMES:
            with pytest.raises(DeepslimError, match=f"runtime '{runtime}' needs a CUDA GPU"):
                measure_latency(model, X, runtimes=(runtime,), batch_sizes=(1,), min_seconds=0.01)
    elif not ort_cuda_available():
        with pytest.raises(DeepslimError, match="pip install onnxruntime-gpu"):
            measure_latency(model, X, runtimes=("onnxruntime-cuda",), batch_sizes=(1,), min_seconds=0.01)
    with pytest.raises(DeepslimError, match="unknown runtime 'tpu'.*cuda-graph"):
        measure_latency(model, X, runtimes=("tpu",))


def test_profile_command_refuses_bad_runtimes_and_devices(cli):
    code, _, err = cli("profile", "--model", "lenet5", "--latency", "--runtimes", "torch,tpu")
    assert code == 2 and "unknown runtime tpu" in err and len(err.strip().splitlines()) == 1
    if not torch.cuda.is_available():
        code, _, err = cli("profile", "--model", "lenet5", "--latency", "--device", "cuda")
        assert code == 2 and "no CUDA GPU" in err and len(err.strip().splitlines()) == 1


def test_every_torch_gpu_runtime_times_a_copy_with_cuda_events(cuda):
    model = deepslim.create_model("resnet8").eval()
    runtimes = [r for r in TORCH_GPU_RUNTIMES if r != "cuda-compile"] + ["cuda-compile"]
    batches = {r: (1,) if r == "cuda-compile" else (1, 8) for r in runtimes}  # one compile is enough here
    rows = [row for r in runtimes
            for row in measure_latency(model, X, runtimes=(r,), batch_sizes=batches[r], min_seconds=0.05)]
    assert [(r.runtime, r.batch_size) for r in rows] == [(rt, b) for rt in runtimes for b in batches[rt]]
    assert all(r.median_ms > 0 and r.repeats >= 10 for r in rows)
    assert next(model.parameters()).device.type == "cpu"  # the caller's model did not move
    from deepslim.profiling.gpu_latency import torch_gpu_runner

    assert isinstance(torch_gpu_runner(model, X, "cuda")(), float)  # the call's own time, from CUDA events


def test_a_cuda_graph_replays_what_eager_computes(cuda):
    from deepslim.profiling.gpu_latency import _graph_call

    model = deepslim.create_model("resnet8").to(cuda).eval()
    x = torch.randn(4, 1, 28, 28, device=cuda)
    replay = _graph_call(model, (x,), {})
    for _ in range(2):
        x.copy_(torch.randn_like(x))  # the graph reads its static input afresh at every replay
        with torch.no_grad():
            expected = model(x)
        assert torch.allclose(replay(), expected, rtol=1e-3, atol=1e-3)  # TF32 convolutions either way


def test_interleaved_comparison_on_the_gpu(cuda):
    big, small = deepslim.create_model("resnet8"), deepslim.create_model("lenet5")
    (row,) = compare_latency(big, small, X, runtimes=("cuda",), batch_sizes=(64,), min_seconds=0.1)
    assert row.rounds >= 5 and row.baseline_ms > 0 and row.candidate_ms > 0 and row.speedup_min <= row.speedup


def test_profile_command_on_the_gpu(cuda, cli):
    import json

    code, out, err = cli("profile", "--model", "lenet5", "--latency", "--device", str(cuda), "--runtimes",
                         "cuda,cuda-bf16,cuda-graph", "--batch-sizes", "1", "--latency-seconds", "0.05", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert [r["runtime"] for r in data["latency"]] == ["cuda", "cuda-bf16", "cuda-graph"]
    assert data["environment"]["gpu"] and "energy_per_1000" not in data


def test_a_compiler_or_capture_failure_is_one_line_naming_the_runtime():
    from deepslim.profiling.gpu_latency import _refused_as

    with pytest.raises(DeepslimError, match=r"runtime .cuda-graph.: cannot capture: RuntimeError: first line \(") as err:
        with _refused_as("cuda-graph", "cannot capture"):
            raise RuntimeError("first line\n  deep inside torch\n  more")
    assert "leave 'cuda-graph' out of --runtimes" in err.value.hint
