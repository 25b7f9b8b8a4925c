"""Low-rank factorization: SVD, spatial SVD, Tucker-2, rank selection, force regularization."""

from .api import RankPlan, build_factorized, factorize_
from .config import Factorization
from .force import ForceRegularization, filter_rank

__all__ = ["Factorization", "ForceRegularization", "RankPlan", "build_factorized", "factorize_", "filter_rank"]
