"""The end-to-end demo behind `make demo`.

Today it evaluates the shipped baselines on the full Fashion-MNIST test split, exports
each to ONNX (checked against PyTorch) and writes runs/demo/summary.json. The compression
pipeline (issue 8) will replace this with `deepslim compress` on the flagship.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.export.files import write_json_atomic


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs/demo"))
    parser.add_argument("--data-dir", help="Fashion-MNIST folder (default /usr/share/datasets/fashion-mnist)")
    args = parser.parse_args()
    try:
        data = deepslim.load_dataset("fashion-mnist", **({"data_dir": args.data_dir} if args.data_dir else {}))
    except DeepslimError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in deepslim.list_pretrained():
        model = deepslim.load_pretrained(name)
        started = time.perf_counter()
        result = deepslim.evaluate(model, data.test)
        onnx = deepslim.export_onnx(model, args.out / f"{name}.onnx", torch.randn(1, *data.input_shape))
        rows.append({"name": name, "params": sum(p.numel() for p in model.parameters()),
                     "test_accuracy": result["accuracy"], "test_images": result["n"],
                     "eval_seconds": round(time.perf_counter() - started, 1),
                     "onnx": onnx["path"], "onnx_max_abs_diff": onnx["max_abs_diff"]})
    write_json_atomic(args.out / "summary.json", {"baselines": rows})
    print(f"{'baseline':<15} {'params':>10} {'test accuracy':>14} {'ONNX |diff|':>12}")
    for r in rows:
        print(f"{r['name']:<15} {r['params']:>10,} {r['test_accuracy']:>13.2f}% {r['onnx_max_abs_diff']:>12.1e}")
    print(f"\nwrote {args.out / 'summary.json'} and the ONNX files beside it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
