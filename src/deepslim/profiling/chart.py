"""The classic "accuracy vs operations" chart: one bubble per trained model, area ~ parameters."""

from __future__ import annotations

from pathlib import Path

from ..export.files import write_atomic


def accuracy_vs_macs_chart(points: list[dict], path: str | Path, title: str = "Accuracy vs MACs") -> Path:
    """Write a PNG of ``points`` (dicts with ``name``, ``accuracy``, ``macs``, ``params``).

    Example:
        >>> accuracy_vs_macs_chart([{"name": "a", "accuracy": 90.0, "macs": 1e6, "params": 1e5}],
        ...                        "/tmp/chart.png")          # doctest: +SKIP
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    biggest = max((p["params"] for p in points), default=1)
    for p in points:
        area = 60 + 1500 * p["params"] / biggest
        ax.scatter(p["macs"] / 1e6, p["accuracy"], s=area, alpha=0.5, edgecolors="black")
        ax.annotate(f"{p['name']}\n{p['params'] / 1e6:.2f}M params", (p["macs"] / 1e6, p["accuracy"]),
                    textcoords="offset points", xytext=(8, 6), fontsize=8)
    ax.set_xscale("log")
    ax.margins(x=0.3)  # room for the labels right of the bubbles
    ax.set_xlabel("MACs per image (millions, log scale)")
    ax.set_ylabel("top-1 test accuracy (%)")
    ax.set_title(title + " (bubble area ~ parameters)")
    ax.grid(True, which="both", alpha=0.3)
    if points:
        low = min(p["accuracy"] for p in points)
        high = max(p["accuracy"] for p in points)
        ax.set_ylim(low - max(1.0, 0.15 * (high - low)), high + max(1.0, 0.15 * (high - low)))
    fig.tight_layout()
    path = Path(path)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path
