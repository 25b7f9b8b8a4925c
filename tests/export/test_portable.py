"""Artifacts written by one torch load under another: defaults are not recorded, and an argument the
running torch lacks is dropped when it is a known default, refused (naming it and both torches) otherwise."""

import inspect
import json
import logging

import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.export import architecture
from deepslim.export.architecture import module_to_spec, spec_to_module
from deepslim.export.pretrained import pretrained_path, shipped_baselines

WRITER = "9.9.0"  # a torch that does not exist: the writer named in the messages


def small_net():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), nn.InstanceNorm2d(4),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 3, bias=False)).eval()


def records(spec, short_name):
    """Every record of a class named ``short_name`` in the spec tree."""
    found = [spec] if spec["class"].endswith("." + short_name) else []
    for child in spec["children"].values():
        found += records(child, short_name)
    return found


def saved_with(tmp_path, edit):
    """Save ``small_net`` as if written by torch ``WRITER``, with ``edit(spec)`` applied to its architecture."""
    model = small_net()
    folder = deepslim.save(model, tmp_path / "m")
    spec = json.loads((folder / "architecture.json").read_text())
    edit(spec)
    (folder / "architecture.json").write_text(json.dumps(spec))
    meta = json.loads((folder / "metadata.json").read_text())
    meta["versions"]["torch"] = WRITER
    (folder / "metadata.json").write_text(json.dumps(meta))
    return model, folder


def add_to_convs(name, value):
    def edit(spec):
        for record in records(spec, "Conv2d"):
            record["args"][name] = value
    return edit


def test_a_model_saved_now_records_no_default_valued_arguments(tmp_path):
    model = small_net()
    spec = json.loads((deepslim.save(model, tmp_path / "m") / "architecture.json").read_text())
    plain, reflect = records(spec, "Conv2d")
    assert plain["args"] == {"in_channels": 1, "out_channels": 4, "kernel_size": [3, 3], "padding": [1, 1],
                             "bias": False}  # no stride [1, 1], dilation, groups, padding_mode
    assert reflect["args"]["padding_mode"] == "reflect" and "bias" not in reflect["args"]
    assert records(spec, "BatchNorm2d")[0]["args"] == {"num_features": 4}  # no `bias`, eps, momentum ...
    assert records(spec, "InstanceNorm2d")[0]["args"] == {"num_features": 4}  # no affine: its bias means nothing
    assert records(spec, "Linear")[0]["args"]["bias"] is False
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(deepslim.load(tmp_path / "m")(x), model(x))


@pytest.mark.parametrize("name", shipped_baselines())
def test_shipped_baselines_carry_no_default_valued_torch_arguments(name):
    spec = json.loads((pretrained_path(name) / "architecture.json").read_text())
    for record in records(spec, "BatchNorm2d"):
        assert list(record["args"]) == ["num_features"]
    for record in records(spec, "Conv2d"):
        assert not {"padding_mode", "dilation", "groups"} & set(record["args"])
        assert record["args"].get("bias", False) is False and record["args"].get("stride") != [1, 1]


def test_unknown_argument_at_its_known_default_loads_with_one_warning(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(architecture.KNOWN_DEFAULTS, "Conv2d", {"future_arg": 1})
    model, folder = saved_with(tmp_path, add_to_convs("future_arg", 1))
    with caplog.at_level(logging.WARNING, logger="deepslim.export.architecture"):
        loaded = deepslim.load(folder)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(loaded(x), model(x))
    warnings = [r.getMessage() for r in caplog.records if "future_arg" in r.getMessage()]
    assert len(warnings) == 1  # two Conv2d layers, one warning
    assert "Conv2d" in warnings[0] and WRITER in warnings[0] and torch.__version__ in warnings[0]


@pytest.mark.parametrize("known", [{"future_arg": 1}, None], ids=["non-default", "default-unknown"])
def test_unknown_argument_otherwise_is_refused_naming_it_and_both_torches(tmp_path, monkeypatch, known):
    if known:
        monkeypatch.setitem(architecture.KNOWN_DEFAULTS, "Conv2d", known)
    _, folder = saved_with(tmp_path, add_to_convs("future_arg", 2))
    with pytest.raises(DeepslimError) as err:
        deepslim.load(folder)
    message = str(err.value)
    assert "'future_arg'=2" in message and "Conv2d" in message
    assert f"torch {WRITER}" in message and f"torch {torch.__version__}" in message
    assert "\n" not in message + err.value.hint


def test_a_spec_without_versions_names_another_torch():
    spec = module_to_spec(nn.Linear(2, 2))
    spec["args"]["future_arg"] = True
    with pytest.raises(DeepslimError, match="written by another torch version"):
        spec_to_module(spec)


def _without_bias(monkeypatch, cls=nn.BatchNorm2d):
    """Make ``cls``'s constructor the one of torch 2.11, which has no `bias` argument."""
    original = cls.__init__
    affine_default = cls is not nn.InstanceNorm2d

    def init(self, num_features, eps=1e-5, momentum=0.1, affine=affine_default, track_running_stats=affine_default,
             device=None, dtype=None):
        original(self, num_features, eps, momentum, affine, track_running_stats, device, dtype)

    monkeypatch.setattr(cls, "__init__", init)


def test_old_style_artifact_with_batchnorm_bias_loads_under_a_torch_without_it(tmp_path, monkeypatch, caplog):
    # deepslim used to record every argument; torch 2.11 failed on BatchNorm2d(bias=True)
    def record_everything(spec):
        for record in records(spec, "BatchNorm2d"):
            record["args"].update(eps=1e-05, momentum=0.1, affine=True, track_running_stats=True, bias=True)
        for record in records(spec, "Conv2d"):
            record["args"].update(stride=[1, 1], dilation=[1, 1], groups=1)
            record["args"].setdefault("padding_mode", "zeros")
    model, folder = saved_with(tmp_path, record_everything)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(deepslim.load(folder)(x), model(x))  # this torch knows `bias`: no warning needed
    _without_bias(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="deepslim.export.architecture"):
        assert torch.equal(deepslim.load(folder)(x), model(x))
    assert any("BatchNorm2d argument 'bias'=True" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif("bias" not in inspect.signature(nn.BatchNorm2d.__init__).parameters,
                    reason="needs a torch whose BatchNorm2d takes `bias` (2.13 does, 2.11 does not)")
def test_batchnorm_without_bias_is_refused_by_a_torch_without_it(tmp_path, monkeypatch):
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4, bias=False))
    deepslim.save(model, tmp_path / "m")
    _without_bias(monkeypatch)
    with pytest.raises(DeepslimError, match=r"BatchNorm2d argument 'bias'=False.*its default is True"):
        deepslim.load(tmp_path / "m")


@pytest.mark.parametrize("name", shipped_baselines())
def test_shipped_baselines_load_under_a_torch_without_batchnorm_bias(name, monkeypatch, caplog):
    _without_bias(monkeypatch)
    with caplog.at_level(logging.WARNING, logger="deepslim.export.architecture"):
        model = deepslim.load_pretrained(name)
    assert model(torch.randn(2, 1, 28, 28)).shape == (2, 10)
    assert not caplog.records  # nothing recorded that this torch lacks


def test_old_style_non_affine_norm_bias_is_ignored_by_a_torch_without_it(tmp_path, monkeypatch):
    # older files recorded bias=false for a norm without affine parameters, where it means nothing
    def record_bias(spec):
        records(spec, "InstanceNorm2d")[0]["args"].update(affine=False, bias=False)
    model, folder = saved_with(tmp_path, record_bias)
    _without_bias(monkeypatch, nn.InstanceNorm2d)
    x = torch.randn(2, 1, 8, 8)
    assert torch.equal(deepslim.load(folder)(x), model(x))
