"""Pruning configs: one dataclass per method, validated on construction."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..core import Config, DeepslimError

SCOPES = ("layer", "global")
IMPORTANCES = ("l1", "l2", "bn_scale", "taylor", "fpgm", "random")


@dataclass
class MagnitudePruning(Config):
    """Zero the smallest-magnitude weights: ``sparsity`` of each layer (``scope="layer"``)
    or of all selected layers together (``scope="global"``)."""

    sparsity: float = 0.5
    scope: str = "layer"

    def __post_init__(self):
        self.check_range("sparsity", 0.0, 1.0, high_inclusive=False)
        self.check_choice("scope", SCOPES)


@dataclass
class RandomPruning(Config):
    """Zero a random ``sparsity`` of the weights (the control for magnitude pruning)."""

    sparsity: float = 0.5
    scope: str = "layer"
    seed: int = 0

    def __post_init__(self):
        self.check_range("sparsity", 0.0, 1.0, high_inclusive=False)
        self.check_choice("scope", SCOPES)


@dataclass
class NMSparsity(Config):
    """Keep the ``n`` largest of every ``m`` consecutive weights along the input dimension."""

    n: int = 2
    m: int = 4

    def __post_init__(self):
        self.check_range("m", 1, None, integer=True)
        self.check_range("n", 1, self.m, integer=True)


@dataclass
class ChannelPruning(Config):
    """Physically remove ``ratio`` of the channels (filters, neurons, heads' dims) and every
    slice that depends on them, leaving an ordinary dense model.

    ``per_layer`` maps module names to their own ratio (``0`` keeps a layer whole).
    """

    ratio: float = 0.5
    importance: str = "l2"
    global_ranking: bool = False
    round_to: int | None = None
    per_layer: dict = field(default_factory=dict)

    def __post_init__(self):
        self.check_range("ratio", 0.0, 1.0, high_inclusive=False)
        self.check_choice("importance", IMPORTANCES)
        if self.round_to is not None:
            self.check_range("round_to", 1, None, integer=True)
        if not isinstance(self.per_layer, dict):
            raise DeepslimError("ChannelPruning.per_layer must map layer names to ratios")
        for name, ratio in self.per_layer.items():
            if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0.0 <= ratio < 1.0:
                raise DeepslimError(f"ChannelPruning.per_layer['{name}'] = {ratio!r} is out of range",
                                    hint="allowed: [0.0, 1.0)")


GROUP_IMPORTANCES = ("l1", "l2", "taylor", "random")


def _check_group_pruning(config: Config) -> None:
    """The fields HeadPruning and FFNPruning share: a ratio below 1, an importance, a scope."""
    config.check_range("ratio", 0.0, 1.0, high_inclusive=False)
    config.check_choice("importance", GROUP_IMPORTANCES)
    config.check_choice("scope", SCOPES)


@dataclass
class HeadPruning(Config):
    """Remove ``ratio`` of the attention heads, whole (their q/k/v rows and output-projection columns),
    and update the head counts the modules read; the model width is kept.

    Works on ``nn.MultiheadAttention`` (replaced by an equal ``SplitMultiheadAttention`` first),
    Hugging Face BERT-style self-attention (``query/key/value``, ``num_attention_heads``) and q/k/v
    attention with ``num_heads`` (the zoo's ViT). ``scope="layer"`` removes ``round(ratio * heads)``
    of each layer's heads; ``scope="global"`` ranks all heads together (each layer keeps one at
    least). ``importance="taylor"`` needs ``data`` (and ``task=``/``loss_fn=`` for tasks other
    than classification).

    Example:
        >>> HeadPruning(ratio=0.5, scope="global").to_dict()["scope"]
        'global'
    """

    ratio: float = 0.5
    importance: str = "l2"
    scope: str = "layer"

    def __post_init__(self):
        _check_group_pruning(self)


@dataclass
class FFNPruning(Config):
    """Remove ``ratio`` of the hidden neurons of every feed-forward block: a Linear whose outputs go,
    through activations only, into one other Linear (a transformer's intermediate/FFN layer, an
    MLP's hidden layer). ``scope="global"`` ranks neurons across blocks.

    Example:
        >>> FFNPruning(ratio=0.25).importance
        'l2'
    """

    ratio: float = 0.5
    importance: str = "l2"
    scope: str = "layer"

    def __post_init__(self):
        _check_group_pruning(self)


LAYER_SELECTIONS = ("greedy_loss", "last", "first")


@dataclass
class LayerDropping(Config):
    """Remove whole layers of an encoder stack (a ``ModuleList`` of identical blocks whose class name
    ends with ``Layer``: Hugging Face ``BertEncoder.layer``, ``nn.TransformerEncoder.layers``).

    ``keep_layers`` layers remain (default: half of them, at least one), chosen by ``selection``:
    ``"greedy_loss"`` drops one layer at a time, each time the one whose removal raises the loss on
    the data least; ``"last"`` drops the last layers, ``"first"`` the first ones. ``drop_layers``
    names the layer indices to remove instead (``selection`` is then unused). ``stack`` names the
    ``ModuleList`` when a model has several (``"bert.encoder.layer"``). The fields are not named
    ``keep``/``drop`` because a recipe stage's ``keep`` is its keep rule.

    Example:
        >>> LayerDropping(keep_layers=3).selection
        'greedy_loss'
    """

    keep_layers: int | None = None
    drop_layers: list | None = None
    selection: str = "greedy_loss"
    stack: str | None = None

    def __post_init__(self):
        self.check_choice("selection", LAYER_SELECTIONS)
        if self.keep_layers is not None and self.drop_layers is not None:
            raise DeepslimError("LayerDropping takes keep_layers or drop_layers, not both",
                                hint="keep_layers=3 keeps three layers; drop_layers=[4, 5] removes layers 4 and 5")
        if self.keep_layers is not None:
            self.check_range("keep_layers", 1, None, integer=True)
        if self.drop_layers is not None:
            if isinstance(self.drop_layers, tuple):
                self.drop_layers = list(self.drop_layers)
            if not isinstance(self.drop_layers, list) or not self.drop_layers or any(
                    isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in self.drop_layers):
                raise DeepslimError(f"LayerDropping.drop_layers = {self.drop_layers!r} must be a non-empty list of layer indices",
                                    hint="e.g. drop_layers=[4, 5] (indices from 0)")
            if len(set(self.drop_layers)) != len(self.drop_layers):
                raise DeepslimError(f"LayerDropping.drop_layers = {self.drop_layers!r} repeats an index",
                                    hint="name each layer to remove once")
        if self.stack is not None and (not isinstance(self.stack, str) or not self.stack):
            raise DeepslimError(f"LayerDropping.stack = {self.stack!r} must be a module name",
                                hint="e.g. stack='bert.encoder.layer'")


@dataclass
class BlockDropping(Config):
    """Remove whole residual blocks of a network's depth: each is replaced by ``nn.Identity``, so the
    graph loses all of its layers (a ResNet basic or bottleneck block without downsampling, a stride-1
    inverted residual, a transformer block in an ``nn.Sequential``).

    ``blocks`` blocks are removed (default 1), chosen greedily: each round drops the candidate whose
    removal raises the loss on the data least. ``names`` lists the blocks to remove instead (module
    names, e.g. ``"stages.0.0"``; ``deepslim.prune.droppable_blocks`` lists the candidates). What makes
    a candidate is described in ``prune/blocks.py``.

    Example:
        >>> BlockDropping(blocks=2).blocks
        2
    """

    blocks: int | None = None
    names: list | None = None

    def __post_init__(self):
        if self.blocks is not None and self.names is not None:
            raise DeepslimError("BlockDropping takes blocks or names, not both",
                                hint="blocks=2 picks two blocks by loss; names=['stages.0.0'] removes that block")
        if self.blocks is not None:
            self.check_range("blocks", 1, None, integer=True)
        if self.names is not None:
            if isinstance(self.names, tuple):
                self.names = list(self.names)
            if not isinstance(self.names, list) or not self.names or not all(isinstance(n, str) and n for n in self.names):
                raise DeepslimError(f"BlockDropping.names = {self.names!r} must be a non-empty list of module names",
                                    hint="e.g. names=['stages.0.0'] (deepslim.prune.droppable_blocks lists them)")
            if len(set(self.names)) != len(self.names):
                raise DeepslimError(f"BlockDropping.names = {self.names!r} repeats a block", hint="name each block once")


UNSTRUCTURED = (MagnitudePruning, RandomPruning, NMSparsity)
STRUCTURED = (ChannelPruning, HeadPruning, FFNPruning, LayerDropping, BlockDropping)
