"""Core building blocks shared by every deepslim module."""

from .config import Config, config_types
from .device import resolve_device
from .errors import DeepslimError
from .module import SerializableModule
from .progress import log, progress, set_quiet
from .registry import Registry
from .seed import seed_everything

__all__ = ["Config", "config_types", "DeepslimError", "Registry", "SerializableModule", "log", "progress", "resolve_device",
           "seed_everything", "set_quiet"]
