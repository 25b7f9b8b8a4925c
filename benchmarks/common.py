"""Helpers shared by the benchmark scripts: environment record and Markdown output."""

from __future__ import annotations

import json
import platform
from datetime import date
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from deepslim.profiling.latency import cpu_description


def environment() -> dict:
    env = {"date": str(date.today()), "python": platform.python_version(), **cpu_description()}
    for pkg in ("torch", "onnxruntime", "onnx", "torch-pruning", "deepslim"):
        try:
            env[pkg] = version(pkg)
        except PackageNotFoundError:
            env[pkg] = "not installed"
    env["torch_threads"] = torch.get_num_threads()
    return env


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | None, data: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
