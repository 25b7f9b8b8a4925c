"""Map ONNX node names from PyTorch's exporter back to module names."""

from __future__ import annotations


def module_of_node(node_name: str) -> str:
    """``/stages/stages.0/stages.0.0/conv1/Conv`` -> ``stages.0.0.conv1``.

    The exporter names a node by the scope path of the module that produced it; nested
    containers repeat their prefix (``stages``, ``stages.0``), leaf names do not.

    Example:
        >>> module_of_node("/stem/stem.0/Conv")
        'stem.0'
    """
    parts = [p for p in node_name.split("/") if p][:-1]
    name = ""
    for part in parts:
        if not name or part.startswith(name + "."):
            name = part
        else:
            name = f"{name}.{part}"
    return name
