"""Compression pipelines: recipes, the stage runner, metrics and the HTML report."""

from .recipe import Recipe, load_recipe, parse_recipe
from .runner import compress
from .techniques import TECHNIQUES

__all__ = ["Recipe", "TECHNIQUES", "compress", "load_recipe", "parse_recipe"]
