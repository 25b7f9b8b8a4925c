"""Quantizing the shipped fmnist-resnet: fp32 vs deepslim PTQ int8 vs ONNX Runtime's own
quantize_static defaults (the peer row) vs QAT int8, then 4-bit weights with and without
equalization + bias correction, and binary / ternary networks.

Accuracy on the full 10,000-image test split. int8 models are timed against the fp32 ONNX
model interleaved on ONNX Runtime at batch 1 and 64 (shared/BENCHMARKING.md).

    .venv/bin/python benchmarks/quantize_flagship.py --json benchmarks/results/quantize_flagship.json

``--only adaround`` runs just the AdaRound section: round-to-nearest against AdaRound with the same
calibration images and observer, at int8 (ONNX Runtime) and at 4-bit weights (PyTorch fake-quant),
on the flagship and on fmnist-cnn:

    .venv/bin/python benchmarks/quantize_flagship.py --only adaround --json benchmarks/results/adaround.json
"""

from __future__ import annotations

import argparse
import copy
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from common import environment, markdown_table, write_json  # noqa: E402

import deepslim  # noqa: E402
from deepslim.core import log  # noqa: E402
from deepslim.export import evaluate_onnx  # noqa: E402
from deepslim.profiling import compare_latency  # noqa: E402
from deepslim.quantize import (  # noqa: E402
    LowBitConfig,
    PTQConfig,
    executed_integer_ops,
    export_int8,
    freeze_lowbit_,
    lowbit_,
    prepare_qat,
    quantize_,
    strip_qat,
)
from deepslim.train import TrainConfig, Trainer, evaluate  # noqa: E402


def ort_default_static(fp32: Path, out: Path, calibration: torch.Tensor) -> None:
    """The peer: onnxruntime.quantization.quantize_static with its defaults (QDQ, per-tensor, MinMax)."""
    from onnxruntime.quantization import CalibrationDataReader, quantize_static

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"input": calibration[i:i + 64].numpy()} for i in range(0, len(calibration), 64)])

        def get_next(self):
            return next(self.batches, None)

    quantize_static(str(fp32), str(out), Reader())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calib", type=int, default=512)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--lowbit-epochs", type=int, default=3)
    parser.add_argument("--latency-seconds", type=float, default=1.0)
    parser.add_argument("--json", type=Path)
    parser.add_argument("--only", choices=("adaround",), help="run one section only")
    parser.add_argument("--adaround-iterations", type=int, default=1000)
    args = parser.parse_args()
    if args.only == "adaround":
        return adaround_section(args)
    data = deepslim.load_dataset("fashion-mnist")
    model = deepslim.load_pretrained("fmnist-resnet").eval()
    calibration = data.train.images[: args.calib]
    example = data.test.images[:1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        fp32 = tmp / "fp32.onnx"
        deepslim.export_onnx(model, fp32, example)
        onnx_models = {"fp32": fp32}
        export_int8(model, calibration, tmp / "ptq.onnx", PTQConfig(observer="percentile", calibration_size=args.calib))
        onnx_models["deepslim PTQ int8 (percentile)"] = tmp / "ptq.onnx"
        for observer in ("minmax", "mse", "entropy"):
            export_int8(model, calibration, tmp / f"ptq-{observer}.onnx", PTQConfig(observer=observer))
            onnx_models[f"deepslim PTQ int8 ({observer})"] = tmp / f"ptq-{observer}.onnx"
        ort_default_static(fp32, tmp / "ort.onnx", calibration)
        onnx_models["peer: ORT quantize_static defaults"] = tmp / "ort.onnx"
        t0 = time.perf_counter()
        qat = prepare_qat(model, calibration)
        Trainer(qat, TrainConfig(epochs=args.qat_epochs, lr=0.005, weight_decay=0.0)).fit(data.train)
        export_int8(strip_qat(qat.eval()), calibration, tmp / "qat.onnx",
                    PTQConfig(fold_bn=False, calibration_size=args.calib))
        onnx_models[f"deepslim QAT int8 ({args.qat_epochs} epochs)"] = tmp / "qat.onnx"
        log(f"QAT took {time.perf_counter() - t0:.0f} s")
        for name, path in onnx_models.items():
            acc = evaluate_onnx(path, data.test)["accuracy"]
            ops = executed_integer_ops(path)
            integer = sum(v for k, v in ops.items() if k.startswith(("QLinear", "ConvInteger", "MatMulInteger")))
            row = {"name": name, "accuracy": acc, "size_bytes": path.stat().st_size, "integer_ops": integer}
            if name != "fp32":
                row["latency"] = [c.to_dict() for c in compare_latency(
                    fp32, path, example, runtimes=("onnxruntime",), min_seconds=args.latency_seconds)]
            rows.append(row)
            log(f"{name}: {acc:.2f}%")

    low_bit = []
    base = evaluate(model, data.test)["accuracy"]
    for label, cfg in (("4-bit weights, plain", PTQConfig(observer="mse")),
                       ("4-bit weights, + equalization + bias correction",
                        PTQConfig(observer="mse", equalize=True, bias_correction=True))):
        fake = quantize_(model, cfg, calibration, weight_bits=4)
        low_bit.append({"name": label, "accuracy": evaluate(fake, data.test)["accuracy"]})
    for mode in ("binary", "ternary"):
        net = copy.deepcopy(model)
        lowbit_(net, LowBitConfig(mode=mode))
        Trainer(net, TrainConfig(epochs=args.lowbit_epochs, optimizer="adamw", lr=1e-3, weight_decay=0.0)).fit(data.train)
        freeze_lowbit_(net)
        with tempfile.TemporaryDirectory() as tmp:
            deepslim.save(net.cpu(), Path(tmp) / "m")
            size = (Path(tmp) / "m" / "weights.safetensors").stat().st_size
        low_bit.append({"name": f"{mode} weights ({args.lowbit_epochs} epochs, first/last layer float)",
                        "accuracy": evaluate(net, data.test)["accuracy"], "size_bytes": size})

    headers = ["model (ONNX Runtime)", "test acc %", "file MB", "integer ops", "b1 speed-up vs fp32 [min-max]",
               "b64 speed-up vs fp32 [min-max]"]
    table = []
    for r in rows:
        cells = [r["name"], f"{r['accuracy']:.2f}", f"{r['size_bytes'] / 1e6:.2f}", r["integer_ops"]]
        for bs in (1, 64):
            c = next((c for c in r.get("latency", []) if c["batch_size"] == bs), None)
            cells.append(f"{c['speedup']:.2f}x [{c['speedup_min']:.2f}-{c['speedup_max']:.2f}]" if c else "1.00x")
        table.append(cells)
    print(markdown_table(headers, table))
    print()
    print(markdown_table(["low-bit (PyTorch)", "test acc %", "saved weights MB"],
                         [["fp32", f"{base:.2f}", ""]] + [[r["name"], f"{r['accuracy']:.2f}",
                                                           f"{r['size_bytes'] / 1e6:.3f}" if "size_bytes" in r else ""]
                                                          for r in low_bit]))
    env = environment()
    print(f"\ncalibration: {args.calib} training images; {env}")
    write_json(args.json, {"args": vars(args) | {"json": str(args.json)}, "onnx": rows, "low_bit": low_bit,
                           "fp32_pytorch_accuracy": base, "environment": env})
    return 0


def adaround_rows(name: str, data, calibration: torch.Tensor, iterations: int) -> list[dict]:
    """Round-to-nearest vs AdaRound on one shipped model: int8 on ONNX Runtime, and 4-bit weights
    (8-bit activations, mse observer, as the low-bit rows above) simulated in PyTorch."""
    model = deepslim.load_pretrained(name).eval()
    fp32 = evaluate(model, data.test)["accuracy"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for rounding in ("nearest", "adaround"):
            config = PTQConfig(calibration_size=len(calibration), rounding=rounding, adaround_iterations=iterations)
            t0 = time.perf_counter()
            info = export_int8(model, calibration, Path(tmp) / f"{rounding}.onnx", config)
            seconds = time.perf_counter() - t0
            acc = evaluate_onnx(Path(tmp) / f"{rounding}.onnx", data.test)["accuracy"]
            rows.append(_adaround_row(name, "int8 (ONNX Runtime, percentile)", rounding, fp32, acc, seconds, info))
    for rounding in ("nearest", "adaround"):
        config = PTQConfig(observer="mse", calibration_size=len(calibration), rounding=rounding,
                           adaround_iterations=iterations)
        report: dict = {}
        t0 = time.perf_counter()
        fake = quantize_(model, config, calibration, weight_bits=4, report=report)
        seconds = time.perf_counter() - t0
        acc = evaluate(fake, data.test)["accuracy"]
        rows.append(_adaround_row(name, "4-bit weights (PyTorch, mse)", rounding, fp32, acc, seconds,
                                  {"adaround": report} if report else {}))
    return rows


def _adaround_row(model: str, setting: str, rounding: str, fp32: float, acc: float, seconds: float, info: dict) -> dict:
    row = {"model": model, "setting": setting, "rounding": rounding, "fp32_accuracy": fp32, "accuracy": acc,
           "seconds": seconds}
    layers = info.get("adaround", {}).get("layers", {})
    if layers:
        row["layers_with_lower_error"] = sum(r["adaround_error"] < r["nearest_error"] for r in layers.values())
        row["layers"] = len(layers)
        row["settled"] = min(r["settled"] for r in layers.values())
    log(f"{model} {setting} {rounding}: {acc:.2f}% (fp32 {fp32:.2f}%) in {seconds:.0f} s")
    return row


def adaround_section(args) -> int:
    data = deepslim.load_dataset("fashion-mnist")
    calibration = data.train.images[: args.calib]
    rows = [r for name in ("fmnist-resnet", "fmnist-cnn")
            for r in adaround_rows(name, data, calibration, args.adaround_iterations)]
    table = []
    for nearest, ada in zip(rows[::2], rows[1::2]):
        lost = nearest["fp32_accuracy"] - nearest["accuracy"]
        recovered = (ada["accuracy"] - nearest["accuracy"]) / lost if lost > 0 else float("nan")
        table.append([ada["model"], ada["setting"], f"{ada['fp32_accuracy']:.2f}", f"{nearest['accuracy']:.2f}",
                      f"{ada['accuracy']:.2f}", f"{100 * recovered:.0f}%" if lost > 0 else "no loss to recover",
                      f"{ada['layers_with_lower_error']}/{ada['layers']}", f"{nearest['seconds']:.0f} / {ada['seconds']:.0f}"])
    print(markdown_table(["model", "setting", "fp32 %", "nearest %", "AdaRound %", "loss recovered",
                          "layers with lower output error", "seconds (nearest / AdaRound)"], table))
    env = environment()
    print(f"\ncalibration: the first {args.calib} training images for both roundings; AdaRound "
          f"{args.adaround_iterations} iterations per layer; full 10,000-image test split; {env}")
    write_json(args.json, {"args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
                           "rows": rows, "environment": env})
    return 0


if __name__ == "__main__":
    sys.exit(main())
