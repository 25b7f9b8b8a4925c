"""deepslim: make trained deep networks cheaper to run, and prove it with measurements.

Example:
    >>> import deepslim
    >>> data = deepslim.load_dataset("fashion-mnist", subset=2000)            # doctest: +SKIP
    >>> model = deepslim.create_model("lenet5")
    >>> deepslim.train(model, data.train, deepslim.TrainConfig(epochs=1))      # doctest: +SKIP
"""

__version__ = "0.1.0"

from .core import Config, DeepslimError, seed_everything  # noqa: E402
from .data import list_datasets, load_dataset  # noqa: E402
from .distill import KD, distill  # noqa: E402
from .export import export_onnx, list_pretrained, load, load_pretrained, onnx_session, save  # noqa: E402
from .lowrank import Factorization, factorize_  # noqa: E402
from .models import create_model, list_models  # noqa: E402
from .profiling import profile  # noqa: E402
from .prune import (  # noqa: E402
    BlockDropping,
    ChannelPruning,
    FFNPruning,
    HeadPruning,
    LayerDropping,
    MagnitudePruning,
    NMSparsity,
    RandomPruning,
    prune_,
)
from .quantize import PTQConfig, export_int8, export_int8_dynamic, quantize_  # noqa: E402
from .train import Callback, Classification, EmbeddingMatch, Task, TrainConfig, Trainer, evaluate, train  # noqa: E402

__all__ = ["Callback", "Classification", "EmbeddingMatch", "Task", "ChannelPruning", "Config", "Factorization", "factorize_", "FFNPruning", "HeadPruning", "KD", "BlockDropping", "LayerDropping", "distill", "MagnitudePruning", "NMSparsity", "RandomPruning", "prune_",
           "profile", "PTQConfig", "export_int8", "export_int8_dynamic", "quantize_", "DeepslimError", "TrainConfig", "Trainer", "__version__", "create_model",
           "evaluate", "export_onnx", "list_datasets", "list_models", "list_pretrained", "load", "load_dataset",
           "load_pretrained", "onnx_session", "save", "seed_everything", "train"]
