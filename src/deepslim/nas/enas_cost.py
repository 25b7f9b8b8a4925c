"""MACs and parameters of ENAS children, for a hardware-aware reward (``EnasConfig.max_macs``/``max_params``).

``enas-macro`` has no measured latency table (only ``ofa-mbconv`` has one, see ``latency_table``), so the
cost an ENAS search can penalise is counted: one forward pass of the standalone child under
``count_ops`` (FlopCounterMode), once per distinct arch.

Example:
    >>> from deepslim.nas import get_space
    >>> space = get_space("enas-macro", channels=8, num_layers=2, reduce_after=(0,))
    >>> costs = ChildCosts(space, (1, 28, 28))
    >>> costs(space.sample(0))["macs"] > 0
    True
"""

from __future__ import annotations

import torch

from .enas_space import EnasArch, EnasMacroSpace


class ChildCosts:
    """``costs(arch)`` -> ``{"macs", "params"}`` of ``arch``'s standalone child on one ``input_shape`` image;
    cached, as a search meets the same arch many times."""

    def __init__(self, space: EnasMacroSpace, input_shape: tuple[int, ...]):
        self.space, self.input_shape = space, tuple(input_shape)
        self._cache: dict[str, dict] = {}

    def __call__(self, arch: EnasArch | dict) -> dict:
        from ..profiling import count_ops
        from .enas_supernet import new_child

        arch = self.space.validate(arch)
        key = arch.key()
        if key not in self._cache:
            counts = count_ops(new_child(self.space, arch).eval(), torch.zeros(1, *self.input_shape))
            self._cache[key] = {"macs": int(counts.macs), "params": int(counts.params)}
        return self._cache[key]
