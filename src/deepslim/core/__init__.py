"""Core building blocks shared by every deepslim module."""

from .config import Config, config_types
from .device import cpu_name, resolve_device
from .errors import DeepslimError
from .modes import eval_mode, set_mode, train_mode
from .module import SerializableModule, set_submodule
from .progress import log, progress, set_quiet
from .registry import Registry
from .seed import seed_everything

__all__ = ["Config", "cpu_name", "config_types", "DeepslimError", "Registry", "SerializableModule", "log", "progress", "resolve_device",
           "seed_everything", "set_quiet", "set_submodule", "eval_mode", "set_mode", "train_mode"]
