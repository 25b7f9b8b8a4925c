"""`deepslim export`: write an ONNX file for a saved model, checked against PyTorch.

A folder that already ships an ONNX file (an int8 model, a compress run or one of its stages)
is not exported again: a float export of an int8 model's PyTorch twin would be bigger, slower
and differ from it by a quantization step. The command names the deployed file, and copies it
with ``--output``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

from ..core import DeepslimError
from ..export import export_onnx, onnx_session
from ..export.files import write_atomic
from ..train import check_input_shape
from .args import add_command, parse_shape, print_json
from .resolve import ModelFolder, model_folder


def add_parser(sub) -> None:
    p = add_command(sub, "export", help="export a saved model to ONNX",
                    description="Export a saved model to ONNX (dynamic batch size) and check that ONNX Runtime's "
                                "outputs match PyTorch's (max abs diff <= --tolerance); the file appears only once "
                                "the check passes. A folder that already ships an ONNX file (an int8 model, a "
                                "`deepslim compress` --out folder or one of its stages) is not exported again: the "
                                "command names that file, and copies it with --output.")
    p.add_argument("model_dir", type=Path, metavar="DIR",
                   help="saved model folder, a `deepslim compress` --out folder, or one of its stages/NN-name")
    p.add_argument("--onnx", action="store_true", required=True, help="write an ONNX file (the only format so far)")
    p.add_argument("--output", type=Path, help="ONNX file to write (default: DIR/model.onnx)")
    p.add_argument("--input-shape", help="example input shape, e.g. 1,1,28,28 (default: from the model's metadata)")
    p.add_argument("--opset", type=int, help="ONNX opset, default 17")
    p.add_argument("--tolerance", type=float,
                   help="largest accepted ONNX Runtime vs PyTorch difference of any output, default 1e-4")
    p.add_argument("--overwrite", action="store_true", help="replace an existing ONNX file")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args) -> int:
    folder = model_folder(args.model_dir)
    if args.tolerance is not None and args.tolerance < 0:
        raise DeepslimError(f"--tolerance {args.tolerance} is negative", hint="e.g. --tolerance 1e-4")
    if folder.int8 or (folder.onnx is not None and folder.kind != "model"):
        return _shipped(args, folder)
    meta = folder.metadata
    text = _is_text_model(folder)
    if text and args.input_shape:
        raise DeepslimError("--input-shape does not apply to a sentence embedder: it takes token ids of any length",
                            hint="drop --input-shape; the export has dynamic batch and sequence axes")
    if args.input_shape:
        shape = parse_shape(args.input_shape)
    elif meta.get("input_shape"):
        shape = tuple(meta["input_shape"])
    elif not text:
        raise DeepslimError(f"{args.model_dir} does not record its input shape", hint="pass --input-shape 1,1,28,28")
    output = args.output or folder.model_dir / "model.onnx"
    if output.exists() and not args.overwrite:
        raise DeepslimError(f"{output} already exists", hint="pass --overwrite or --output OTHER.onnx")
    model = folder.load()
    if text:  # token ids and mask of a real sentence; batch and sequence stay free in the file
        from ..text import tokenize

        example, dynamic_sequence = tokenize(model, [EXAMPLE_SENTENCE]), True
    else:
        example, dynamic_sequence = torch.randn(*shape), False
        check_input_shape(model, example)
    try:
        result = export_onnx(model, output, example, opset=args.opset or 17, dynamic_sequence=dynamic_sequence,
                             atol=1e-4 if args.tolerance is None else args.tolerance)
    except DeepslimError as exc:
        if "differ from PyTorch's" in exc.message and meta.get("quantization"):
            raise DeepslimError(exc.message, hint="this model is fake-quantized: a value on a rounding boundary can "
                                "land one quantization step apart in the two runtimes; pass --tolerance 0.01 to "
                                "accept that (nothing was written)") from exc
        raise
    if args.json:
        print_json(result)
    else:
        print(f"wrote {result['path']} (ONNX Runtime vs PyTorch max abs diff {result['max_abs_diff']:.2e})")
    return 0


EXAMPLE_SENTENCE = "Utilities to compress and decompress files on the command line"


def _is_text_model(folder: ModelFolder) -> bool:
    """Whether the saved model is a sentence embedder (its architecture file's root class), without loading it."""
    import json

    from ..export.artifact import ARCHITECTURE

    try:
        root = json.loads((folder.model_dir / ARCHITECTURE).read_text()).get("class", "")
    except (OSError, ValueError):
        return False
    return root == "deepslim.text.embedder.SentenceEmbedder"


def _shipped(args, folder: ModelFolder) -> int:
    """The folder's deployed ONNX file: named, or copied to --output (atomically, once ONNX Runtime loads it)."""
    given = [flag for flag, value in (("--input-shape", args.input_shape), ("--opset", args.opset),
                                      ("--tolerance", args.tolerance)) if value is not None]
    if given:
        raise DeepslimError(f"{given[0]} does not apply: {args.model_dir} already ships {folder.onnx}, which is "
                            "not exported again", hint="drop it; --output FILE.onnx copies the deployed file")
    source = folder.onnx
    what = f"{folder.deployed_precision} ONNX model" if folder.int8 else "ONNX model"
    result = {"path": str(source), "source": str(source), "int8": folder.int8 and folder.deployed_precision == "int8",
              "precision": folder.deployed_precision, "copied": False, "max_abs_diff": None}
    if args.output is not None and args.output.resolve() != source.resolve():
        if args.output.exists() and not args.overwrite:
            raise DeepslimError(f"{args.output} already exists", hint="pass --overwrite or --output OTHER.onnx")

        def copy(tmp: Path) -> None:
            shutil.copyfile(source, tmp)
            onnx_session(tmp)  # a copy ONNX Runtime cannot load never appears under --output

        write_atomic(args.output, copy)
        result.update(path=str(args.output), copied=True)
    if args.json:
        print_json(result)
    elif result["copied"]:
        print(f"wrote {args.output} (a copy of {source}, the deployed {what})")
    else:
        print(f"nothing to export: {args.model_dir} already ships {source}, its deployed {what} "
              "(pass --output FILE.onnx for a copy)")
    return 0
