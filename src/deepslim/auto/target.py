"""What `deepslim auto` aims at: a target such as ``speedup>=6``, an accuracy bound and a time budget.

Example:
    >>> parse_target("speedup>=6")
    Target(metric='speedup', op='>=', value=6.0)
    >>> parse_target("macs<=5e6").met({"macs": 4e6})
    True
    >>> parse_budget("1h30m")
    5400.0
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..core import DeepslimError
from ..core.registry import near_matches

# metric -> (the operator that makes sense, what it means). Each is read off a measured plan:
# speed-ups and latencies on ONNX Runtime (never predicted from MACs), MACs counted, size of the ONNX file.
TARGET_METRICS = {
    "speedup": (">=", "median speed-up over the input model on ONNX Runtime at --batch, timed in turns"),
    "ort_latency_ms": ("<=", "median ms per call on ONNX Runtime at --batch"),
    "macs": ("<=", "multiply-accumulates of one input"),
    "size_mb": ("<=", "size of the deployed ONNX file in MB (1e6 bytes)"),
}
_TARGET = re.compile(r"\s*([a-z_0-9]+)\s*(>=|<=)\s*([-+0-9.eE]+)\s*")
_BUDGET_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(min|h|m|s)?")


def valid_targets() -> str:
    return ", ".join(f"{m}{op}N ({what})" for m, (op, what) in TARGET_METRICS.items())


@dataclass(frozen=True)
class Target:
    metric: str
    op: str
    value: float

    def met(self, measured: dict) -> bool:
        """Whether ``measured[metric]`` satisfies the target (a missing figure does not)."""
        got = measured.get(self.metric)
        if got is None:
            return False
        return got >= self.value if self.op == ">=" else got <= self.value

    def minimize(self) -> bool:
        """The search's second objective runs this way (a speed-up is maximised; costs are minimised)."""
        return self.op == "<="

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.value:g}"


def parse_target(text: str) -> Target:
    """``"speedup>=6"`` -> ``Target``; an unknown metric or a backwards operator is refused, naming the valid ones."""
    match = _TARGET.fullmatch(text or "")
    if not match:
        raise DeepslimError(f"--target {text!r} is not METRIC>=N or METRIC<=N", hint=f"valid targets: {valid_targets()}")
    metric, op, raw = match.groups()
    if metric not in TARGET_METRICS:
        close = near_matches(metric, TARGET_METRICS)
        raise DeepslimError(f"--target: unknown metric '{metric}'",
                            hint=(f"did you mean '{close[0]}'? " if close else "") + f"valid targets: {valid_targets()}")
    want = TARGET_METRICS[metric][0]
    if op != want:
        raise DeepslimError(f"--target {text}: {metric} is a {'gain' if want == '>=' else 'cost'}, aimed at with {want}",
                            hint=f"e.g. --target '{metric}{want}{raw}'")
    try:
        value = float(raw)
    except ValueError:
        raise DeepslimError(f"--target {text}: {raw!r} is not a number", hint=f"valid targets: {valid_targets()}") from None
    if value <= 0:
        raise DeepslimError(f"--target {text}: the value must be > 0")
    return Target(metric, op, value)


def parse_budget(text: str) -> float:
    """Seconds from ``"2h"``, ``"90m"``, ``"1h30m"``, ``"45s"`` or a bare number of seconds."""
    text = (text or "").strip().lower()
    parts = _BUDGET_PART.findall(text)
    if not text or not parts or "".join(n + u for n, u in parts) != text.replace(" ", ""):
        raise DeepslimError(f"--budget {text!r} is not a duration", hint="e.g. --budget 2h, 90m, 1h30m or 600s")
    seconds = sum(float(n) * {"h": 3600, "m": 60, "min": 60, "s": 1, "": 1}[u] for n, u in parts)
    if seconds <= 0:
        raise DeepslimError("--budget must be longer than 0 s", hint="e.g. --budget 2h")
    return seconds


def format_seconds(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds >= 3600:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"
