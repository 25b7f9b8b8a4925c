import json

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.nas import OFASubnet, OFASupernet, extract_subnet
from deepslim.pipeline import compress, parse_recipe
from deepslim.profiling import count_ops
from deepslim.testing import tiny_data

RECIPE = """name: ofa-int8
stages:
  - technique: ofa_subnet
    macs: {macs}
    budget: 4
    population: 2
    calibration_size: 64
    finetune: {{epochs: 1, lr: 0.01, batch_size: 32, distill: true}}
  - technique: quantize
"""


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    return OFASupernet(widths=(8, 8, 16, 16), head_channels=32).eval()


def _macs(model) -> int:
    return count_ops(model, torch.zeros(1, 1, 28, 28)).macs


def test_compress_starts_from_the_searched_subnet(supernet, tmp_path, fake_compare):
    data = tiny_data(n_train=200)
    largest = _macs(extract_subnet(supernet, supernet.space.largest()))
    limit = (largest + _macs(extract_subnet(supernet, supernet.space.smallest()))) / 2
    before = {k: v.clone() for k, v in supernet.state_dict().items()}
    metrics = compress(supernet, data, parse_recipe(RECIPE.format(macs=limit)), tmp_path / "out",
                       device=torch.device("cpu"), latency_seconds=0.02, compare=fake_compare({}))
    assert all(torch.equal(before[k], v) for k, v in supernet.state_dict().items())  # the input is untouched
    assert metrics["baseline"]["macs"] == largest  # the baseline is the supernet's largest subnet
    first = metrics["stages"][0]
    assert first["technique"] == "ofa_subnet" and first["macs"] <= limit < largest
    assert first["details"]["search"]["feasible"] and first["details"]["evaluations"] == 4
    assert metrics["stages"][1]["int8"]
    saved = deepslim.load(tmp_path / "out" / "stages" / "01-ofa_subnet" / "model")
    assert isinstance(saved, OFASubnet)
    assert json.loads((tmp_path / "out" / "metrics.json").read_text())["final"]["int8"]


def test_ofa_subnet_needs_a_supernet_input(tmp_path):
    model = deepslim.create_model("fmnist-cnn")
    with pytest.raises(DeepslimError, match="not a once-for-all supernet"):
        compress(model, tiny_data(n_train=64), parse_recipe(RECIPE.format(macs=1e6)), tmp_path / "out",
                 device=torch.device("cpu"))


@pytest.mark.parametrize("text, message", [
    ("  - technique: quantize\n  - technique: ofa_subnet\n    macs: 1e6\n", "must be the first stage"),
    ("  - technique: ofa_subnet\n", "needs a limit"),
    ("  - technique: ofa_subnet\n    latency_ms: 0.1\n", "latency_ms needs latency_table"),
    ("  - technique: ofa_subnet\n    macs: 1e6\n    strategy: grid\n", "strategy"),
])
def test_recipe_refusals(text, message):
    with pytest.raises(DeepslimError, match=message):
        parse_recipe("stages:\n" + text)


def test_exponent_numbers_read_as_floats():
    # PyYAML reads 5e6 as a string (YAML 1.1); a recipe means the number
    recipe = parse_recipe("stages:\n  - technique: ofa_subnet\n    macs: 5e6\n    finetune: {epochs: 1, lr: 1e-3}\n")
    assert recipe.stages[0].config.macs == 5e6 and recipe.stages[0].finetune.lr == 1e-3
