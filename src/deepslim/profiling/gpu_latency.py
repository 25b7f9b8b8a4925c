"""Latency on a CUDA GPU: the runtimes ``measure_latency`` and ``compare_latency`` time there.

A small model on a GPU is bound by kernel launches, not arithmetic (on an H200 the flagship
pruned to a quarter of its MACs was only 1.03x faster at batch 1), so the ways of running it
that cut launches are timed next to plain eager mode:

    cuda           PyTorch eager, float32
    cuda-fp16      eager under ``torch.autocast(float16)``
    cuda-bf16      eager under ``torch.autocast(bfloat16)``
    cuda-half      eager with float16 weights and inputs (``model.half()``: no casts at run time)
    cuda-compile   ``torch.compile(mode="reduce-overhead")`` (Inductor kernels replayed as CUDA graphs)
    cuda-graph     eager float32 captured once as a CUDA graph and replayed
    onnxruntime-cuda  ONNX Runtime's CUDA provider (onnxruntime-gpu), float32 ONNX export

Each torch call is timed with CUDA events around it, after warm-up (which also compiles or
captures), and is synchronised, so a sample is one call's latency as a caller sees it. A model
elsewhere is copied to the GPU: the caller's model never moves (one already there is put in eval
mode and used as it is).

Example:
    >>> import deepslim, torch
    >>> from deepslim.profiling import measure_latency
    >>> rows = measure_latency(deepslim.create_model("resnet8"), torch.randn(1, 1, 28, 28),
    ...                        runtimes=("cuda", "cuda-graph"), batch_sizes=(1, 64))   # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
from typing import Callable

import torch
from torch import nn

from ..core import DeepslimError
from ..core.inputs import as_args_kwargs, map_tensors, model_device, move_inputs

TORCH_GPU_RUNTIMES = ("cuda", "cuda-fp16", "cuda-bf16", "cuda-half", "cuda-compile", "cuda-graph")
GPU_RUNTIMES = (*TORCH_GPU_RUNTIMES, "onnxruntime-cuda")
_AUTOCAST = {"cuda-fp16": torch.float16, "cuda-bf16": torch.bfloat16}


def ort_cuda_available() -> bool:
    """Whether ONNX Runtime here has its CUDA provider (the ``onnxruntime-gpu`` build)."""
    import onnxruntime as ort

    return "CUDAExecutionProvider" in ort.get_available_providers()


def check_gpu_runtime(runtime: str) -> None:
    """Refuse a GPU runtime this machine cannot run, in one line naming what is missing."""
    if not torch.cuda.is_available():
        raise DeepslimError(f"runtime '{runtime}' needs a CUDA GPU, and none is available here",
                            hint="time on the CPU runtimes (torch, onnxruntime), or run on a machine with a GPU")
    if runtime == "onnxruntime-cuda" and not ort_cuda_available():
        raise DeepslimError("runtime 'onnxruntime-cuda' needs ONNX Runtime's CUDA provider, which this onnxruntime "
                            "lacks", hint="pip install onnxruntime-gpu (in place of onnxruntime)")


def gpu_runtimes_here() -> tuple[str, ...]:
    """The GPU runtimes this machine can time (none without a GPU)."""
    if not torch.cuda.is_available():
        return ()
    return GPU_RUNTIMES if ort_cuda_available() else TORCH_GPU_RUNTIMES


def _timed(call: Callable[[], None]) -> Callable[[], float]:
    """``call`` wrapped to return its own latency in ms, read from CUDA events around it."""
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def run() -> float:
        start.record()
        call()
        end.record()
        end.synchronize()
        return start.elapsed_time(end)

    return run


def torch_gpu_runner(model: nn.Module, example, runtime: str, device="cuda") -> Callable[[], float]:
    """A callable running ``model`` (a copy on ``device``) on ``example`` the ``runtime`` way; each
    call returns its latency in ms. Compilation and graph capture happen here, before any timing."""
    check_gpu_runtime(runtime)
    device = torch.device(device)
    if device.index is None:
        device = torch.device("cuda", torch.cuda.current_device())
    if runtime == "cuda-half":  # a copy in float16, inputs too
        model = copy.deepcopy(model).to(device).half()
        example = map_tensors(move_inputs(example, device), lambda t: t.half() if t.is_floating_point() else t)
    elif model_device(model) != device:  # a copy moves, so the caller's model stays where it is
        model = copy.deepcopy(model).to(device)
    model.eval()
    args, kwargs = as_args_kwargs(move_inputs(example, device))

    if runtime in _AUTOCAST:
        dtype = _AUTOCAST[runtime]

        def call() -> None:
            with torch.inference_mode(), torch.autocast("cuda", dtype=dtype):
                model(*args, **kwargs)
    elif runtime == "cuda-compile":
        compiled = torch.compile(model, mode="reduce-overhead")

        def call() -> None:
            with torch.no_grad():  # not inference_mode: cudagraph trees replay under no_grad
                compiled(*args, **kwargs)
        with _refused_as(runtime, "torch.compile failed on this model"):
            for _ in range(3):  # compile, then record the graph
                call()
    elif runtime == "cuda-graph":
        with _refused_as(runtime, "the model cannot be captured as a CUDA graph (it syncs with the host or "
                                  "allocates dynamically)"):
            call = _graph_call(model, args, kwargs)
    else:
        def call() -> None:
            with torch.inference_mode():
                model(*args, **kwargs)
    torch.cuda.synchronize(device)
    return _timed(call)


@contextlib.contextmanager
def _refused_as(runtime: str, what: str):
    """Turn a compiler's or graph capture's long traceback into one line naming the runtime to drop."""
    try:
        yield
    except DeepslimError:
        raise
    except Exception as exc:  # Inductor, Triton and capture errors come in many types
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise DeepslimError(f"runtime '{runtime}': {what}: {type(exc).__name__}: {first}",
                            hint=f"time the other runtimes (leave '{runtime}' out of --runtimes)") from exc


def _graph_call(model: nn.Module, args, kwargs) -> Callable[[], object]:
    """One forward pass captured as a CUDA graph over the static inputs ``args``/``kwargs``; calling the
    result replays it and returns the (static) outputs."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.no_grad(), torch.cuda.stream(stream):
        for _ in range(3):  # warm-up on a side stream, as capture requires (cuDNN/cuBLAS handles, autotuning)
            model(*args, **kwargs)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.no_grad(), torch.cuda.graph(graph):
        outputs = model(*args, **kwargs)

    def replay():
        graph.replay()  # reads the static inputs afresh, writes the same output tensors
        return outputs

    # The graph holds raw addresses of the weights and inputs: keep them alive as long as it can replay
    # (freed, their memory is reused by the next allocation and a replay reads it: an illegal access).
    replay.keep_alive = (model, args, kwargs, graph)
    return replay


def ort_gpu_runner(path, feed) -> Callable[[], None]:
    """ONNX Runtime on its CUDA provider (inputs copied from host memory each call, as a server would)."""
    from ..export.onnx import onnx_session
    from ..export.onnx_io import ort_feed

    check_gpu_runtime("onnxruntime-cuda")
    session = onnx_session(path, device="cuda")
    if session.get_providers()[0] != "CUDAExecutionProvider":
        raise DeepslimError("ONNX Runtime did not put the model on its CUDA provider",
                            hint="check that onnxruntime-gpu matches this CUDA version")
    feed = ort_feed(session, feed)

    def run() -> None:
        session.run(None, feed)

    return run
