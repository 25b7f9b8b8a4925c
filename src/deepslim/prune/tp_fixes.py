"""A fix to Torch-Pruning 1.6's dependency graph on current PyTorch, applied once before it traces.

Torch-Pruning maps channel indices through a flatten by reading the flattened tensor's size from
the autograd node's ``_saved_self_sizes``; PyTorch 2 names that attribute ``_saved_self_sym_sizes``.
Without it Torch-Pruning skips its own check that the flattened size is the consumer's width and
guesses the stride from the consumer alone. A ``(N, C, 1, 1)`` pooled map flattened into a
``torch.cat`` with another branch (a two-input or multi-modal head) then looks like ``C`` channels
of ``width / C`` features each, and pruning removes the wrong inputs of the layer after the concat
(the model fails to run). Giving Torch-Pruning the size under the name it reads restores the check;
models it already handled (flatten straight into a Linear, pooled features into a classifier) map
exactly as before.
"""

from __future__ import annotations


class _WithSavedSizes:
    """An autograd node seen through the attribute name Torch-Pruning reads."""

    def __init__(self, grad_fn):
        self._grad_fn = grad_fn
        self._saved_self_sizes = tuple(int(s) for s in grad_fn._saved_self_sym_sizes)

    def __getattr__(self, name):
        return getattr(self._grad_fn, name)


def patch_torch_pruning() -> None:
    """Install the fix (idempotent).

    Example:
        >>> patch_torch_pruning()
        >>> import torch_pruning.dependency.index_mapping as m
        >>> m.update_reshape_index_mapping.__name__
        'update_reshape_index_mapping_with_sizes'
    """
    from torch_pruning.dependency import index_mapping

    original = index_mapping.update_reshape_index_mapping
    if getattr(original, "_deepslim_fix", False):
        return

    def update_reshape_index_mapping_with_sizes(graph, reshape_node):
        grad_fn = reshape_node.grad_fn
        # Only where Torch-Pruning would otherwise map without checking (its "legacy" branch).
        if not getattr(graph, "_2d_4d", False) or hasattr(grad_fn, "_saved_self_sizes") \
                or not hasattr(grad_fn, "_saved_self_sym_sizes"):
            return original(graph, reshape_node)
        reshape_node.grad_fn = _WithSavedSizes(grad_fn)
        try:
            return original(graph, reshape_node)
        finally:
            reshape_node.grad_fn = grad_fn

    update_reshape_index_mapping_with_sizes._deepslim_fix = True
    index_mapping.update_reshape_index_mapping = update_reshape_index_mapping_with_sizes
