"""The plans `deepslim auto` searches: each a recipe composed from the existing techniques.

A plan is a flat dict of choices (what Optuna suggests and stores); ``recipe_text`` turns it into
the YAML recipe `deepslim compress` runs, at full fidelity or as a short proxy. The winning plan's
full recipe is written next to the result, so `deepslim compress --recipe` reproduces it.

- ``ImageSpace`` (classifiers): blocks dropped (when the model has droppable blocks: residual blocks
  that keep their input's shape; at batch 1 the int8 time is per-node overhead, and only removing depth
  removes nodes), channel pruning (uniform or global ranking, ratio, ``round_to``), optional low-rank
  factorization, int8 by PTQ (observer) or QAT, or none; KD fine-tune epochs.
  Sensitivity and adaptive allocation are not searched: each runs its own scan (about 11 min on
  the flagship), too dear per trial (BENCHMARKS.md).
- ``TextSpace`` (sentence embedders): encoder layers kept, FFN neurons and attention heads removed,
  dynamic int8 (with or without the embedding tables); distillation epochs.

Each space also names its starting plans (``starting_plans``): the shapes of the shipped recipes that fit
the model (``recipes/prune-quantize.yaml``, ``recipes/drop-prune-quantize.yaml``, ``recipes/minilm-search*.yaml``).
A new study runs them first, so the search starts where a hand recipe would, at proxy fidelity, and the
sampler learns from them; they compete with every other plan on the same terms.

Example:
    >>> space = ImageSpace()
    >>> plan = {"ratio": 0.5, "allocation": "uniform", "round_to": 8, "factorize": "none",
    ...         "quantize": "ptq-percentile", "epochs": 14}
    >>> print(space.describe(plan))
    prune 50% uniform (round 8), KD 14 ep, int8 PTQ percentile
"""

from __future__ import annotations

import yaml

EPOCHS_IMAGE = (6, 10, 14, 20)
EPOCHS_TEXT = (1, 2, 3)


def _finetune(epochs: int, lr: float, batch_size: int | None = None) -> dict:
    ft = {"epochs": int(epochs), "lr": lr, "distill": True}
    if batch_size:
        ft["batch_size"] = batch_size
    return ft


class ImageSpace:
    """Plans for an image classifier. ``ratio_low``/``ratio_high`` bound the share of channels removed;
    ``blocks`` is how many blocks the model has that ``block_dropping`` may remove (0: not searched)."""

    kind = "classification"
    lr = 0.02  # the demo's KD learning rate (recipes/prune-quantize.yaml)

    def __init__(self, ratio_low: float = 0.3, ratio_high: float = 0.75, blocks: int = 0):
        self.ratio_low, self.ratio_high, self.blocks = ratio_low, ratio_high, blocks

    def suggest(self, trial) -> dict:
        depth = {}
        if self.blocks:  # a model without droppable blocks keeps the space (and a study) as it was
            # at most half of them (at least one): removing more depth than that makes another architecture,
            # which the NAS commands search
            depth["drop_blocks"] = trial.suggest_int("drop_blocks", 0, max(1, self.blocks // 2))
        return {
            **depth,
            # step 0.025: the shipped drop recipe removes 37.5% of the channels
            "ratio": trial.suggest_float("ratio", self.ratio_low, self.ratio_high, step=0.025),
            "allocation": trial.suggest_categorical("allocation", ["uniform", "global"]),
            "round_to": trial.suggest_categorical("round_to", [1, 8, 16]),
            "factorize": trial.suggest_categorical("factorize", ["none", "svd-0.95"]),
            "quantize": trial.suggest_categorical("quantize", ["ptq-percentile", "ptq-minmax", "qat", "none"]),
            "epochs": trial.suggest_categorical("epochs", list(EPOCHS_IMAGE)),
        }

    def starting_plans(self) -> dict[str, dict]:
        """The shipped image recipes as plans of this space ({recipe file: plan}), those it can express."""
        demo = {"ratio": 0.5, "allocation": "uniform", "round_to": 8, "factorize": "none",
                "quantize": "ptq-percentile", "epochs": 14}
        plans = {"recipes/prune-quantize.yaml": demo}
        if self.blocks:  # the drop recipe: one block less, fewer channels removed, a longer distillation
            plans = {"recipes/prune-quantize.yaml": {"drop_blocks": 0, **demo},
                     "recipes/drop-prune-quantize.yaml": {"drop_blocks": 1, **demo, "ratio": 0.375, "epochs": 20}}
        return {name: plan for name, plan in plans.items() if self.ratio_low <= plan["ratio"] <= self.ratio_high}

    def stages(self, plan: dict, epochs: int) -> list[dict]:
        prune = {"technique": "channel_pruning", "name": "prune", "ratio": round(float(plan["ratio"]), 4),
                 "importance": "l2", "global_ranking": plan["allocation"] == "global"}
        if int(plan["round_to"]) > 1:
            prune["round_to"] = int(plan["round_to"])
        stages = [prune]
        if int(plan.get("drop_blocks", 0)):
            stages.insert(0, {"technique": "block_dropping", "name": "drop-blocks", "blocks": int(plan["drop_blocks"])})
        if plan["factorize"] != "none":
            method, energy = plan["factorize"].split("-")
            stages.append({"technique": "factorize", "name": "factorize", "method": method, "energy": float(energy)})
        stages[-1]["finetune"] = _finetune(epochs, self.lr)
        if plan["quantize"].startswith("ptq-"):
            stages.append({"technique": "quantize", "name": "int8", "observer": plan["quantize"][4:]})
        elif plan["quantize"] == "qat":
            stages.append({"technique": "qat", "name": "qat", "finetune": _finetune(max(1, epochs // 4), self.lr / 10)})
        return stages

    def describe(self, plan: dict) -> str:
        rounding = f" (round {plan['round_to']})" if int(plan["round_to"]) > 1 else ""
        parts = [f"prune {plan['ratio'] * 100:.4g}% {plan['allocation']}{rounding}"]  # 37.5%, not 38%
        dropped = int(plan.get("drop_blocks", 0))
        if dropped:
            parts.insert(0, f"drop {dropped} block{'s' if dropped > 1 else ''}")
        if plan["factorize"] != "none":
            parts.append(f"factorize {plan['factorize']}")
        parts.append(f"KD {plan['epochs']} ep")
        q = plan["quantize"]
        parts.append({"none": "float32", "qat": "int8 QAT"}.get(q, f"int8 PTQ {q[4:]}"))
        return ", ".join(parts)


class TextSpace:
    """Plans for a sentence embedder (a BERT-like encoder): layers, FFN neurons and heads, then int8."""

    kind = "retrieval"
    lr = 1e-4  # recipes/minilm-search.yaml

    def __init__(self, layers: int = 6):
        self.layers = layers

    def suggest(self, trial) -> dict:
        return {
            "keep_layers": trial.suggest_int("keep_layers", max(1, self.layers // 3), self.layers),
            "ffn_ratio": trial.suggest_categorical("ffn_ratio", [0.0, 0.25, 0.5]),
            "head_ratio": trial.suggest_categorical("head_ratio", [0.0, 0.25, 0.5]),
            "quantize": trial.suggest_categorical("quantize", ["dynamic-embeddings", "dynamic", "none"]),
            "epochs": trial.suggest_categorical("epochs", list(EPOCHS_TEXT)),
        }

    def starting_plans(self) -> dict[str, dict]:
        """The shipped MiniLM recipes as plans of this space: half the layers kept, 2 distillation epochs,
        int8 with the embedding tables; with and without a quarter of the FFN neurons removed."""
        if self.layers < 2:  # nothing to drop: not those recipes' shape
            return {}
        half = {"keep_layers": self.layers // 2, "ffn_ratio": 0.0, "head_ratio": 0.0,
                "quantize": "dynamic-embeddings", "epochs": 2}
        return {"recipes/minilm-search.yaml": half, "recipes/minilm-search-ffn25.yaml": dict(half, ffn_ratio=0.25)}

    def stages(self, plan: dict, epochs: int) -> list[dict]:
        stages = []
        if int(plan["keep_layers"]) < self.layers:
            stages.append({"technique": "layer_dropping", "name": "drop-layers", "keep_layers": int(plan["keep_layers"])})
        if plan["ffn_ratio"]:
            stages.append({"technique": "ffn_pruning", "name": "prune-ffn", "ratio": float(plan["ffn_ratio"])})
        if plan["head_ratio"]:
            stages.append({"technique": "head_pruning", "name": "prune-heads", "ratio": float(plan["head_ratio"])})
        if stages:
            stages[-1]["finetune"] = _finetune(epochs, self.lr, batch_size=32)
        if plan["quantize"] != "none":
            stages.append({"technique": "quantize_dynamic", "name": "int8",
                           "embeddings": plan["quantize"] == "dynamic-embeddings"})
        if not stages:  # nothing removed, nothing quantized: the plan is the input model, distilled
            stages.append({"technique": "ffn_pruning", "name": "prune-ffn", "ratio": 0.0,
                           "finetune": _finetune(epochs, self.lr, batch_size=32)})
        return stages

    def describe(self, plan: dict) -> str:
        parts = [f"{plan['keep_layers']}/{self.layers} layers"]
        if plan["ffn_ratio"]:
            parts.append(f"FFN -{plan['ffn_ratio'] * 100:.0f}%")
        if plan["head_ratio"]:
            parts.append(f"heads -{plan['head_ratio'] * 100:.0f}%")
        if int(plan["keep_layers"]) < self.layers or plan["ffn_ratio"] or plan["head_ratio"] or plan["quantize"] == "none":
            parts.append(f"KD {plan['epochs']} ep")
        parts.append({"none": "float32", "dynamic": "int8 dynamic"}.get(plan["quantize"], "int8 dynamic + embeddings"))
        return ", ".join(parts)


def plan_key(plan: dict) -> tuple:
    """What makes two plans the same plan: a study begun before ``drop_blocks`` was searched has plans
    without it, which are the plans with ``drop_blocks: 0``."""
    return tuple(sorted((k, v) for k, v in plan.items() if not (k == "drop_blocks" and not v)))


def recipe_text(space, plan: dict, *, epochs: int | None = None, max_batch: int | None = None,
                name: str = "auto-plan") -> str:
    """The plan as a recipe (YAML). ``epochs`` overrides the plan's fine-tune epochs (the short proxy);
    ``max_batch`` caps fine-tune batch sizes (a proxy subset smaller than one batch)."""
    stages = space.stages(plan, int(epochs if epochs is not None else plan["epochs"]))
    if max_batch:
        for stage in stages:
            if "finetune" in stage:
                stage["finetune"]["batch_size"] = min(stage["finetune"].get("batch_size", 128), max_batch)
    body = {"name": name, "description": space.describe(plan), "stages": stages}
    return yaml.safe_dump(body, sort_keys=False, default_flow_style=None, width=120)


def space_for(model, task_kind: str, example=None):
    """The plan space that fits the model and task (text: as many layers as the encoder has; images:
    block dropping when ``example``, an input batch, shows the model has droppable blocks)."""
    if task_kind == "retrieval":
        from ..text.embedder import SentenceEmbedder

        return TextSpace(int(model.num_layers) if isinstance(model, SentenceEmbedder) else 6)
    if example is None:
        return ImageSpace()
    from ..prune import droppable_blocks

    return ImageSpace(blocks=len(droppable_blocks(model, example)))


def space_epochs(space) -> tuple:
    """The fine-tune epochs a space's plans choose from."""
    return EPOCHS_TEXT if space.kind == "retrieval" else EPOCHS_IMAGE
