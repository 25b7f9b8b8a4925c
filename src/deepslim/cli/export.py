"""`deepslim export`: write an ONNX file for a saved model, checked against PyTorch."""

from __future__ import annotations

from pathlib import Path

import torch

from ..core import DeepslimError
from ..export import export_onnx, load, read_metadata
from ..train import check_input_shape
from .args import add_command, parse_shape, print_json


def add_parser(sub) -> None:
    p = add_command(sub, "export", help="export a saved model to ONNX",
                       description="Export a saved model to ONNX (dynamic batch size) and check that ONNX Runtime's "
                                   "outputs match PyTorch's (max abs diff < 1e-4).")
    p.add_argument("model_dir", type=Path, metavar="DIR", help="saved model folder")
    p.add_argument("--onnx", action="store_true", required=True, help="write an ONNX file (the only format so far)")
    p.add_argument("--output", type=Path, help="ONNX file to write (default: DIR/model.onnx)")
    p.add_argument("--input-shape", help="example input shape, e.g. 1,1,28,28 (default: from the model's metadata)")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset, default 17")
    p.add_argument("--overwrite", action="store_true", help="replace an existing ONNX file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    meta = read_metadata(args.model_dir)
    if args.input_shape:
        shape = parse_shape(args.input_shape)
    elif meta.get("input_shape"):
        shape = tuple(meta["input_shape"])
    else:
        raise DeepslimError(f"{args.model_dir} does not record its input shape", hint="pass --input-shape 1,1,28,28")
    output = args.output or args.model_dir / "model.onnx"
    if output.exists() and not args.overwrite:
        raise DeepslimError(f"{output} already exists", hint="pass --overwrite or --output OTHER.onnx")
    model = load(args.model_dir)
    example = torch.randn(*shape)
    check_input_shape(model, example)
    result = export_onnx(model, output, example, opset=args.opset)
    if args.json:
        print_json(result)
    else:
        print(f"wrote {result['path']} (ONNX Runtime vs PyTorch max abs diff {result['max_abs_diff']:.2e})")
    return 0
