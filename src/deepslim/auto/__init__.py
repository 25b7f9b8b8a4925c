"""`deepslim auto`: search compression plans for a target on Optuna (trials in-process, in local
processes or on Ray), finish the best in full, publish the fastest that keeps the accuracy bound."""

from .run import AutoConfig, auto_compress
from .target import TARGET_METRICS, Target, parse_budget, parse_target

__all__ = ["AutoConfig", "auto_compress", "TARGET_METRICS", "Target", "parse_budget", "parse_target"]
