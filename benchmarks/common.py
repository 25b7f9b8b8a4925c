"""Helpers shared by the benchmark scripts: environment record and Markdown output."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

from deepslim.profiling.environment import environment as runtime_environment

SPEEDUP_HEADERS = [f"{runtime} b{bs} speed-up [min-max]" for runtime in ("torch", "onnxruntime") for bs in (1, 64)]


def environment() -> dict:
    return {"date": str(date.today()), **runtime_environment()}


def speedup_cells(latency: list[dict]) -> list[str]:
    """The SPEEDUP_HEADERS cells of a row's compare_latency results (blank where not timed)."""
    cells = []
    for runtime in ("torch", "onnxruntime"):
        for bs in (1, 64):
            c = next((c for c in latency if c["runtime"] == runtime and c["batch_size"] == bs), None)
            cells.append(f"{c['speedup']:.2f}x [{c['speedup_min']:.2f}-{c['speedup_max']:.2f}]" if c else "")
    return cells


def uniform_to_budget(model, budget: float, example) -> float:
    """Smallest uniform L2 channel-pruning ratio whose measured MACs fit ``budget`` (bisection)."""
    from deepslim.prune.budget import uniform_ratio_for_macs  # the same search `deepslim prune --mac-ratio` uses

    return uniform_ratio_for_macs(model, budget, example)


def markdown_table(headers: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write_json(path: Path | None, data: dict) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2))
