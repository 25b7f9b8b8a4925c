"""Measure what a model costs: counting, memory, latency, size, energy."""

from .counting import count_ops
from .latency import compare_latency, measure_latency
from .memory import param_bytes, peak_activation_bytes
from .profile import Profile, profile

__all__ = ["Profile", "compare_latency", "count_ops", "measure_latency", "param_bytes", "peak_activation_bytes", "profile"]
