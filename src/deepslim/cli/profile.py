"""`deepslim profile`: params, MACs, per-layer table, memory; with --latency, speed, size and energy."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..core import DeepslimError, resolve_device
from ..core.inputs import call_model, slice_batch
from ..export.onnx import export_onnx, onnx_session, run_onnx
from ..profiling import profile
from ..profiling.energy import EnergySettings, codecarbon_measure, inference_energy_per_1000, measure_power
from ..profiling.environment import cpu_description
from ..profiling.gpu_latency import GPU_RUNTIMES, check_gpu_runtime, gpu_runtimes_here
from ..profiling.latency import ONNX_RUNTIMES, RUNTIMES, measure_latency
from ..profiling.size import compact_weight_bytes, path_bytes, stored_weights
from ..train import check_input_shape
from .args import add_command, parse_kwargs, parse_shape, print_json
from .resolve import add_model_source_args, resolve_model


def add_parser(sub) -> None:
    p = add_command(sub, "profile", help="measure what a model costs",
                    description="Count parameters and MACs (per layer), parameter and activation memory; with "
                                "--latency also time it on PyTorch and ONNX Runtime at batch 1 and 64, and report "
                                "its size on disk and energy per 1,000 predictions. What is deployed is measured: "
                                "an int8 (or float16) folder's or compress run's deployed ONNX file is timed on ONNX Runtime and "
                                "its size reported; bit-packed or sparse models report their compact weights file.")
    add_model_source_args(p)
    p.add_argument("--input-shape", help="input shape, e.g. 1,1,28,28 (default: recorded with the model, else 1,1,28,28)")
    p.add_argument("--latency", action="store_true", help="also measure latency, size and energy")
    p.add_argument("--batch-sizes", default="1,64", help="batch sizes for --latency, default 1,64")
    p.add_argument("--latency-seconds", type=float, default=1.0,
                   help="time spent measuring each runtime and batch size, default 1.0")
    p.add_argument("--threads", type=int, help="threads for both runtimes (default: all of PyTorch's)")
    p.add_argument("--device", default="cpu",
                   help="where --latency times the model: cpu (default: PyTorch and ONNX Runtime on the CPU) or "
                        "cuda/cuda:N (PyTorch eager fp32, fp16/bf16 autocast, torch.compile reduce-overhead, a CUDA "
                        "graph, and ONNX Runtime's CUDA provider when onnxruntime-gpu is installed; CUDA events)")
    p.add_argument("--runtimes", help="comma-separated runtimes to time instead of the device's set, from: "
                                      + ", ".join(RUNTIMES + GPU_RUNTIMES))
    p.add_argument("--codecarbon", action="store_true",
                   help="with --latency, also measure energy with codecarbon's offline tracker (if installed)")
    p.add_argument("--country", default="USA", help="ISO country code for codecarbon's grid intensity, default USA")
    p.add_argument("--rows", type=int, default=40, help="layers shown in the table, default 40")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.latency_seconds < 0:
        raise DeepslimError(f"--latency-seconds {args.latency_seconds} is negative", hint="e.g. --latency-seconds 1")
    runtimes = _runtimes(args)
    resolved = resolve_model(args.model, args.model_dir, parse_kwargs(args.model_arg))
    shape = parse_shape(args.input_shape) if args.input_shape else (resolved.input_shape or (1, 1, 28, 28))
    model = resolved.model.eval()
    example = _example(model, shape, args.input_shape)
    result = profile(model, example)
    data = {"model": resolved.label, **result.to_dict()}
    deployed = resolved.deployed_onnx
    if deployed is not None:
        data["deployed"] = {"onnx": str(deployed), "runtime": f"onnxruntime {resolved.deployed_precision}"}
    if args.latency:
        data.update(_latency_size_energy(model, example, resolved, args, runtimes))
    if args.json:
        print_json(data)
        return 0
    print(f"{resolved.label}")
    print(result.table(max_rows=args.rows))
    if deployed is not None:
        print(f"\ndeployed as {deployed} ({resolved.deployed_precision} on ONNX Runtime); the counts above are its "
              "PyTorch twin's, which has the same multiply-adds")
    if args.latency:
        _print_latency(data)
    return 0


def _example(model, shape, given_shape):
    """One input: a real sentence's token ids and mask for a sentence embedder, else random of ``shape``."""
    from ..text.embedder import SentenceEmbedder

    if isinstance(model, SentenceEmbedder):
        if given_shape:
            raise DeepslimError("--input-shape does not apply to a sentence embedder",
                                hint="drop it: the profile uses a real sentence's tokens")
        from ..text import tokenize
        from .export import EXAMPLE_SENTENCE

        return tokenize(model, [EXAMPLE_SENTENCE])
    return torch.randn(*shape)


def _runtimes(args) -> tuple[str, ...]:
    """The runtimes --latency times: --runtimes, else the device's set; checked before any work."""
    device = resolve_device(args.device)  # cuda without a GPU, or cuda:7 on one GPU: refused here
    if args.runtimes:
        runtimes = tuple(r.strip() for r in args.runtimes.split(",") if r.strip())
        unknown = [r for r in runtimes if r not in RUNTIMES + GPU_RUNTIMES]
        if unknown or not runtimes:
            raise DeepslimError(f"--runtimes {args.runtimes}: unknown runtime {', '.join(unknown) or '(none given)'}",
                                hint=f"choose from {', '.join(RUNTIMES + GPU_RUNTIMES)}")
        for runtime in set(runtimes) & set(GPU_RUNTIMES):
            check_gpu_runtime(runtime)
        return runtimes
    return gpu_runtimes_here() if device.type == "cuda" else RUNTIMES


def _latency_size_energy(model, example, resolved, args, runtimes) -> dict:
    check_input_shape(model, example)
    batch_sizes = tuple(int(b) for b in parse_shape(args.batch_sizes)) if "," in args.batch_sizes else (int(args.batch_sizes),)
    deployed = resolved.deployed_onnx
    if deployed is not None:
        # The PyTorch twin is not what ships (int8: float arithmetic plus rounding): timing it, or a fresh
        # float export of it, would say nothing about the int8 or float16 file that ships. Time that file.
        file_runtimes = _deployed_runtimes(deployed, args, runtimes)
        if file_runtimes != ("onnxruntime",):
            return _gpu_latency_and_size(deployed, example, resolved, args, file_runtimes, batch_sizes, twin=model)
        rows = measure_latency(deployed, example, batch_sizes=batch_sizes, runtimes=("onnxruntime",),
                               threads=args.threads, min_seconds=args.latency_seconds)
        session = onnx_session(deployed, threads=rows[0].threads)

        def forward(batch):
            run_onnx(session, batch)
    elif set(runtimes) & set(GPU_RUNTIMES):
        return _gpu_latency_and_size(model, example, resolved, args, runtimes, batch_sizes)
    else:
        rows = measure_latency(model, example, batch_sizes=batch_sizes, threads=args.threads,
                               min_seconds=args.latency_seconds, runtimes=runtimes)

        def forward(batch):
            with torch.inference_mode():
                call_model(model, batch)
    threads = rows[0].threads
    settings = EnergySettings.from_env()
    power = measure_power(lambda: forward(example), seconds=0.5, settings=settings, cores=threads)
    energy = [{"runtime": r.runtime, **inference_energy_per_1000(r.median_ms, r.batch_size, power["watts"], settings,
                                                                  source=power["source"])} for r in rows]
    result = {"latency": [r.to_dict() for r in rows], "size": _sizes(model, example, resolved),
              "energy_per_1000": energy, "environment": cpu_description(),
              "timed": {"onnxruntime": str(deployed) if deployed is not None else "float32 ONNX export (temporary)",
                        **({} if deployed is not None else {"torch": "the PyTorch model"})}}
    if args.codecarbon:
        from ..core.inputs import repeat_batch

        batch, size = repeat_batch(example, max(batch_sizes)), max(batch_sizes)  # a dict's len() counts its keys

        def work() -> int:
            forward(batch)
            return size

        result["codecarbon_per_1000"] = {"runtime": rows[0].runtime, "batch_size": size,
                                         **codecarbon_measure(work, seconds=3.0, country_iso_code=args.country)}
    return result


def _deployed_runtimes(deployed, args, runtimes) -> tuple[str, ...]:
    """Where a folder's deployed ONNX file is timed: ONNX Runtime on the CPU, or its CUDA provider for
    --device cuda; asking for a PyTorch runtime is refused (that would time the twin, not what ships)."""
    if args.runtimes:
        other = [r for r in runtimes if r not in ONNX_RUNTIMES]
        if other:
            raise DeepslimError(f"--runtimes {other[0]}: this folder ships {deployed.name}, which only ONNX Runtime "
                                "runs", hint="use --runtimes onnxruntime (or onnxruntime-cuda with onnxruntime-gpu)")
        return runtimes
    if resolve_device(args.device).type == "cuda":
        check_gpu_runtime("onnxruntime-cuda")
        return ("onnxruntime-cuda",)
    return ("onnxruntime",)


def _gpu_latency_and_size(model, example, resolved, args, runtimes, batch_sizes, twin=None) -> dict:
    """Latency on the GPU runtimes (and any CPU ones asked for beside them); no energy figure, since
    deepslim's power reading is the CPU's. ``model`` may be a deployed ONNX file (then ``twin`` is
    its PyTorch model, for the size figures)."""
    device = resolve_device(args.device)
    device = device if device.type == "cuda" else torch.device("cuda")  # --runtimes cuda... with the default device
    with torch.cuda.device(device):
        rows = measure_latency(model, example, batch_sizes=batch_sizes, runtimes=runtimes, threads=args.threads,
                               min_seconds=args.latency_seconds)
    gpu = {"gpu": torch.cuda.get_device_name(device), "torch": torch.__version__, "cuda": torch.version.cuda}
    deployed = isinstance(model, Path)
    timed = {r: (str(model) if deployed else "float32 ONNX export (temporary)") if "onnxruntime" in r
             else "a copy of the PyTorch model" for r in runtimes}
    return {"latency": [r.to_dict() for r in rows], "size": _sizes(twin if deployed else model, example, resolved),
            "environment": {**cpu_description(), **gpu}, "timed": timed,
            "energy_not_measured": "on a GPU (deepslim reads CPU power only)"}


def _sizes(model, example, resolved) -> dict:
    """Sizes on disk; ``deployed_bytes`` is the form the model ships in: the int8 ONNX file, the
    bit-packed or sparse weights file, else a float32 ONNX export."""
    size = dict(compact_weight_bytes(model))
    deployed = resolved.deployed_onnx
    if deployed is not None:
        size.update(onnx_bytes=path_bytes(deployed), onnx_file=str(deployed), deployed_bytes=path_bytes(deployed),
                    deployed_as=f"{resolved.deployed_precision} ONNX ({deployed.name})")
    else:
        with tempfile.TemporaryDirectory() as tmp:
            onnx = export_onnx(model, Path(tmp) / "model.onnx", slice_batch(example, 1),
                               dynamic_sequence=not isinstance(example, torch.Tensor))
            size.update(onnx_bytes=path_bytes(onnx["path"]), onnx_file=None)
        size.update(deployed_bytes=size["onnx_bytes"], deployed_as="float32 ONNX export")
    folder = resolved.artifact_dir
    if folder is not None and (folder / "weights.safetensors").is_file():
        size["artifact_bytes"] = sum(path_bytes(folder / f) for f in ("weights.safetensors", "architecture.json",
                                                                       "metadata.json"))
        stored = stored_weights(folder)
        size.update(weights_file_bytes=stored["bytes"], weights_encoding=stored["encoding"])
        if deployed is None and stored["encoding"] != "dense":
            size.update(deployed_bytes=stored["bytes"], deployed_as=f"weights.safetensors ({stored['encoding']})")
    return size


def _kb(n: int) -> str:
    return f"{n / 1e3:.1f} KB" if n < 1e6 else f"{n / 1e6:.2f} MB"


def _print_latency(data: dict) -> None:
    env = data["environment"]
    where = f"{env['gpu']}, CUDA events" if "gpu" in env else f"{env['cpu']}, {data['latency'][0]['threads']} threads"
    print(f"\nlatency ({where}; median [IQR] ms per batch)")
    print(f"  {'runtime':<16} {'batch':>5} {'median':>9} {'IQR':>8} {'per sample':>10} {'repeats':>8}")
    for r in data["latency"]:
        print(f"  {r['runtime']:<16} {r['batch_size']:>5} {r['median_ms']:>9.3f} {r['iqr_ms']:>8.3f} "
              f"{r['median_ms'] / r['batch_size']:>10.4f} {r['repeats']:>8}")
    if "torch" not in {r["runtime"] for r in data["latency"]} and "onnxruntime" in {r["runtime"] for r in data["latency"]}:
        print(f"  timed: {data['timed']['onnxruntime']} (what ships; its PyTorch twin is not timed)")
    s = data["size"]
    float_export = s["onnx_file"] is None and s["deployed_bytes"] != s["onnx_bytes"]
    details = [f"float32 ONNX export {_kb(s['onnx_bytes'])}" if float_export else None,
               f"weights {_kb(s['dense_bytes'])} dense / {_kb(s['compact_bytes'])} compact (in memory)"
               if s["onnx_file"] is None else None,
               f"saved model {_kb(s['artifact_bytes'])}" if "artifact_bytes" in s else None]
    print(f"\nsize: {_kb(s['deployed_bytes'])} as {s['deployed_as']}; " + "; ".join(d for d in details if d))
    if "energy_per_1000" not in data:
        print(f"energy: not measured {data['energy_not_measured']}")
        return
    e = data["energy_per_1000"][0]
    print(f"energy per 1,000 predictions (power {e['watts']:.0f} W {e['power_source']}, PUE {e['pue']}, "
          f"{e['grid_g_per_kwh']:.0f} g CO2e/kWh):")
    for e in data["energy_per_1000"]:
        print(f"  {e['runtime']:<12} batch {e['batch_size']:>3}: {e['energy_wh'] * 1000:.3f} mWh, "
              f"{e['co2e_g'] * 1000:.3f} mg CO2e")
    if "codecarbon_per_1000" in data:
        c = data["codecarbon_per_1000"]
        print(f"  codecarbon ({c['country']}), torch batch {c['batch_size']}: {c['energy_wh'] * 1000:.3f} mWh, "
              f"{c['co2e_g'] * 1000:.3f} mg CO2e per 1,000 predictions")
