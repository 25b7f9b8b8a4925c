"""The classic "accuracy vs operations" chart: one bubble per trained model, area ~ parameters."""

from __future__ import annotations

from pathlib import Path

from ..export.files import write_atomic


def accuracy_vs_macs_figure(points: list[dict], title: str = "Accuracy vs MACs"):
    """A matplotlib figure of ``points`` (dicts with ``name``, ``accuracy``, ``macs``, ``params``)
    whose labels do not overlap one another.

    Example:
        >>> fig = accuracy_vs_macs_figure([{"name": "a", "accuracy": 90.0, "macs": 1e6, "params": 1e5}])
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    biggest = max((p["params"] for p in points), default=1)
    labels = []
    for p in points:
        area = 60 + 1500 * p["params"] / biggest
        ax.scatter(p["macs"] / 1e6, p["accuracy"], s=area, alpha=0.5, edgecolors="black")
        labels.append(ax.annotate(f"{p['name']}\n{p['params'] / 1e6:.2f}M params", (p["macs"] / 1e6, p["accuracy"]),
                                  textcoords="offset points", xytext=(8, 6), fontsize=8,
                                  arrowprops={"arrowstyle": "-", "color": "0.5", "lw": 0.5}))
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
    fig.tight_layout()  # before placing labels: a later layout change would move the bubbles under them
    separate_labels(fig, ax, labels)
    return fig


def separate_labels(fig, ax, labels, pad_px: float = 2.0) -> None:
    """Move labels vertically until no two overlap.

    Greedy, in order of height on the page: each label takes the nearest free slot above or below
    its default place, inside the axes when one is free there (a few lines of "repulsion" instead
    of a layout dependency); a thin leader line joins a moved label to its bubble.
    """
    from matplotlib.text import Text

    renderer = fig.canvas.get_renderer()
    to_points = 72.0 / fig.dpi
    frame = ax.get_window_extent(renderer)

    def extent(label):  # the text alone; an Annotation's own extent includes its leader line
        return Text.get_window_extent(label, renderer)

    placed = []
    for label in sorted(labels, key=lambda a: extent(a).y0):
        box = extent(label)
        step = box.height + pad_px
        # 0, +1, -1, +2, -2 ... label heights: 2 slots per placed label always leave one free.
        shifts = [(k + 1) // 2 * step * (1 if k % 2 else -1) for k in range(4 * len(labels) + 1)]
        free = [s for s in shifts if not any(_overlap(box.translated(0, s), other, pad_px) for other in placed)]
        inside = [s for s in free if frame.y0 <= box.y0 + s and box.y1 + s <= frame.y1]
        shift = (inside or free)[0]
        x, y = label.xyann
        label.xyann = (x, y + shift * to_points)
        label.arrow_patch.set_visible(shift != 0)  # a label left next to its bubble needs no line
        placed.append(box.translated(0, shift))


def _overlap(a, b, pad: float) -> bool:
    return a.x0 < b.x1 + pad and b.x0 < a.x1 + pad and a.y0 < b.y1 + pad and b.y0 < a.y1 + pad


def accuracy_vs_macs_chart(points: list[dict], path: str | Path, title: str = "Accuracy vs MACs") -> Path:
    """Write a PNG of ``points`` (dicts with ``name``, ``accuracy``, ``macs``, ``params``).

    Example:
        >>> accuracy_vs_macs_chart([{"name": "a", "accuracy": 90.0, "macs": 1e6, "params": 1e5}],
        ...                        "/tmp/chart.png")          # doctest: +SKIP
    """
    import matplotlib.pyplot as plt

    fig = accuracy_vs_macs_figure(points, title)
    path = Path(path)
    write_atomic(path, lambda tmp: fig.savefig(tmp, format="png"))
    plt.close(fig)
    return path
