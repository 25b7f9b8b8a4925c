"""Once-for-all NAS: a search **space**, an elastic **supernet** with standalone **subnets**, an
**evaluator** that judges an arch, search **strategies**, and **progressive shrinking** to train the
supernet (see docs/nas.md).

Example:
    >>> from deepslim.testing import tiny_data
    >>> from deepslim.nas import Constraints, Evaluator, OFASupernet, evolution_search, extract_subnet
    >>> net = OFASupernet(widths=(8, 8, 16, 16), head_channels=32)
    >>> data = tiny_data()
    >>> judge = Evaluator(net, data.train, data.val, calibration_size=64)
    >>> result = evolution_search(net.space, judge, budget=6, population=3, sample_size=2,
    ...                           constraints=Constraints(max_macs=5e6))
    >>> model = extract_subnet(net, result.best_arch)    # a standalone model: save, export, quantize
"""

from .accuracy_predictor import AccuracyPredictor
from .controller import Controller, RLConfig, rl_search
from .enas import EnasConfig, EnasResult, enas_search
from .enas_space import EnasArch, EnasMacroSpace
from .enas_supernet import EnasChild, EnasSupernet, extract_child
from .evaluator import Evaluation, Evaluator, calibration_images
from .latency_quality import predictor_quality
from .latency_table import LatencyTable, build_latency_table
from .pareto import hypervolume, pareto_front
from .shrinking import ShrinkingConfig, progressive_shrinking
from .space import Arch, MBConvSpace, get_space, list_spaces, register_space, space_from_dict
from .strategies import Constraints, SearchResult, evolution_search, random_search, search
from .subnet import MBConvBlock, OFASubnet, extract_subnet
from .supernet import OFASupernet, sort_channels_

__all__ = ["AccuracyPredictor", "Arch", "build_latency_table", "calibration_images", "Constraints", "Controller",
           "enas_search", "EnasArch", "EnasChild", "EnasConfig", "EnasMacroSpace", "EnasResult", "EnasSupernet",
           "Evaluation", "Evaluator", "evolution_search", "extract_child", "extract_subnet", "get_space",
           "hypervolume", "LatencyTable", "list_spaces", "MBConvBlock", "MBConvSpace", "OFASubnet", "OFASupernet",
           "pareto_front", "predictor_quality", "progressive_shrinking", "random_search", "register_space",
           "rl_search", "RLConfig", "search", "SearchResult", "ShrinkingConfig", "sort_channels_",
           "space_from_dict"]
