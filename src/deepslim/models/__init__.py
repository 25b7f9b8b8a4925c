"""The model zoo (a registry)."""

from . import cnn, lenet, mobilenetv2, resnet, squeezenet, vit  # noqa: F401  (registers the models)
from .registry import MODELS, create_model, list_models, model_options, register_model

__all__ = ["MODELS", "create_model", "list_models", "model_options", "register_model"]
