"""`deepslim profile`: params, MACs, per-layer table, memory; with --latency, speed, size and energy."""

from __future__ import annotations

import tempfile
from pathlib import Path

import torch

from ..export.onnx import export_onnx
from ..profiling import profile
from ..profiling.energy import EnergySettings, codecarbon_measure, inference_energy_per_1000, measure_power
from ..profiling.latency import cpu_description, measure_latency
from ..profiling.size import compact_weight_bytes, path_bytes
from ..train import check_input_shape
from .args import add_command, parse_kwargs, parse_shape, print_json
from .resolve import add_model_source_args, resolve_model


def add_parser(sub) -> None:
    p = add_command(sub, "profile", help="measure what a model costs",
                    description="Count parameters and MACs (per layer), parameter and activation memory; with "
                                "--latency also time it on PyTorch and ONNX Runtime at batch 1 and 64, and report "
                                "its size on disk and energy per 1,000 predictions.")
    add_model_source_args(p)
    p.add_argument("--input-shape", help="input shape, e.g. 1,1,28,28 (default: recorded with the model, else 1,1,28,28)")
    p.add_argument("--latency", action="store_true", help="also measure latency, size and energy")
    p.add_argument("--batch-sizes", default="1,64", help="batch sizes for --latency, default 1,64")
    p.add_argument("--threads", type=int, help="threads for both runtimes (default: all of PyTorch's)")
    p.add_argument("--codecarbon", action="store_true",
                   help="with --latency, also measure energy with codecarbon's offline tracker (if installed)")
    p.add_argument("--country", default="USA", help="ISO country code for codecarbon's grid intensity, default USA")
    p.add_argument("--rows", type=int, default=40, help="layers shown in the table, default 40")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    resolved = resolve_model(args.model, args.model_dir, parse_kwargs(args.model_arg))
    shape = parse_shape(args.input_shape) if args.input_shape else (resolved.input_shape or (1, 1, 28, 28))
    model = resolved.model.eval()
    example = torch.randn(*shape)
    result = profile(model, example)
    data = {"model": resolved.label, **result.to_dict()}
    if args.latency:
        data.update(_latency_size_energy(model, example, resolved, args))
    if args.json:
        print_json(data)
        return 0
    print(f"{resolved.label}")
    print(result.table(max_rows=args.rows))
    if args.latency:
        _print_latency(data)
    return 0


def _latency_size_energy(model, example, resolved, args) -> dict:
    check_input_shape(model, example)
    batch_sizes = tuple(int(b) for b in parse_shape(args.batch_sizes)) if "," in args.batch_sizes else (int(args.batch_sizes),)
    rows = measure_latency(model, example, batch_sizes=batch_sizes, threads=args.threads)
    threads = rows[0].threads
    settings = EnergySettings.from_env()
    power = measure_power(lambda: model(example), seconds=0.5, settings=settings, cores=threads)
    energy = [{"runtime": r.runtime, **inference_energy_per_1000(r.median_ms, r.batch_size, power["watts"], settings,
                                                                  source=power["source"])} for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(model, Path(tmp) / "model.onnx", example[:1])
        onnx_bytes = path_bytes(onnx["path"])
    size = {"onnx_bytes": onnx_bytes, **compact_weight_bytes(model)}
    if resolved.artifact_dir is not None:
        size["artifact_bytes"] = path_bytes(resolved.artifact_dir / "weights.safetensors") + \
            path_bytes(resolved.artifact_dir / "architecture.json") + path_bytes(resolved.artifact_dir / "metadata.json")
    result = {"latency": [r.to_dict() for r in rows], "size": size, "energy_per_1000": energy,
              "environment": cpu_description()}
    if args.codecarbon:
        from ..profiling.latency import _batch

        batch = _batch(example, max(batch_sizes))

        def work() -> int:
            with torch.inference_mode():
                model(batch)
            return len(batch)

        result["codecarbon_per_1000"] = {"runtime": "torch", "batch_size": len(batch),
                                         **codecarbon_measure(work, seconds=3.0, country_iso_code=args.country)}
    return result


def _print_latency(data: dict) -> None:
    env = data["environment"]
    print(f"\nlatency ({env['cpu']}, {data['latency'][0]['threads']} threads; median [IQR] ms per batch)")
    print(f"  {'runtime':<12} {'batch':>5} {'median':>9} {'IQR':>8} {'per image':>10} {'repeats':>8}")
    for r in data["latency"]:
        print(f"  {r['runtime']:<12} {r['batch_size']:>5} {r['median_ms']:>9.3f} {r['iqr_ms']:>8.3f} "
              f"{r['median_ms'] / r['batch_size']:>10.4f} {r['repeats']:>8}")
    s = data["size"]
    line = f"\nsize: ONNX {s['onnx_bytes'] / 1e6:.2f} MB, weights {s['dense_bytes'] / 1e6:.2f} MB dense / " \
           f"{s['compact_bytes'] / 1e6:.2f} MB compact"
    if "artifact_bytes" in s:
        line += f", saved model {s['artifact_bytes'] / 1e6:.2f} MB"
    print(line)
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
