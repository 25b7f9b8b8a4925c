"""`deepslim nas enas` on a tiny ENAS space and synthetic data."""

import json

import pytest
import torch

import deepslim
from deepslim.nas import EnasChild, EnasSupernet
from deepslim.profiling import count_ops

SPACE = ["--space-option", "channels=8", "--space-option", "num_layers=3", "--space-option", "reduce_after=0"]
RUN = ["--data", "synthetic", "--subset", "128", "--epochs", "2", "--controller-steps", "2", "--batch-size", "32",
       "--evaluations", "7", "--quiet"]


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    from deepslim.cli import main

    folder = tmp_path_factory.mktemp("enas") / "run"
    assert main(["nas", "enas", *SPACE, *RUN, "--out", str(folder)]) == 0
    return folder


def test_the_folder_holds_the_supernet_the_search_and_the_child(searched, cli):
    assert isinstance(deepslim.load(searched / "supernet"), EnasSupernet)
    child = deepslim.load(searched / "child")
    assert isinstance(child, EnasChild)
    result = json.loads((searched / "search.json").read_text())
    assert result["evaluations"] == 7 and len(result["controller"]) == 4 and len(result["candidates"]) == 3
    assert child.deepslim_metadata["nas"]["arch"] == result["arch"]
    assert not (searched / "checkpoint.pt").exists()
    code, stdout, _ = cli("eval", searched / "child", "--json")  # a standalone model: every verb applies
    assert code == 0 and "accuracy" in json.loads(stdout)


def test_random_control_spends_the_same_budget(cli, tmp_path):
    code, stdout, _ = cli("nas", "enas", *SPACE, *RUN, "--strategy", "random", "--json", "--out", tmp_path / "r")
    assert code == 0 and json.loads(stdout)["evaluations"] == 7


def test_refusals(searched, cli, tmp_path):
    code, _, err = cli("nas", "enas", "--space", "ofa-mbconv", *RUN, "--out", tmp_path / "x")
    assert code == 2 and "searches ENAS spaces" in err
    code, _, err = cli("nas", "enas", *SPACE, *RUN[:-3], "--evaluations", "4", "--out", tmp_path / "y")
    assert code == 2 and "too small" in err
    code, _, err = cli("nas", "enas", "--space", "darts", *RUN, "--out", tmp_path / "z")
    assert code == 2 and "enas-macro" in err  # the valid spaces are listed
    code, _, err = cli("nas", "supernet", "--space", "enas-macro", "--data", "synthetic", "--out", tmp_path / "o")
    assert code == 2 and "nas enas" in err
    code, _, err = cli("nas", "search", searched, "--macs", "1e9", "--out", tmp_path / "s")
    assert code == 2 and "ENAS search" in err


def test_resume_refuses_another_space(cli, tmp_path, interrupt_after_checkpoint):
    import deepslim.nas.enas as enas

    undo = interrupt_after_checkpoint(enas)
    code, _, err = cli("nas", "enas", *SPACE, *RUN, "--out", tmp_path / "run")
    assert code != 0 and "--resume" in err
    undo()
    other = ["--space-option", "channels=16", *SPACE[2:]]
    code, _, err = cli("nas", "enas", *other, *RUN, "--resume", "--out", tmp_path / "run")
    assert code == 2 and "another search space" in err
    code, stdout, _ = cli("nas", "enas", *SPACE, *RUN, "--resume", "--json", "--out", tmp_path / "run")
    assert code == 0 and json.loads(stdout)["evaluations"] == 7


def test_a_macs_limit_bounds_the_derived_child(cli, tmp_path):
    code, stdout, _ = cli("nas", "enas", *SPACE, *RUN, "--strategy", "random", "--macs", "80k", "--json",
                          "--out", tmp_path / "m")
    summary = json.loads(stdout)
    assert code == 0 and summary["limits"] == "max_macs=80000"
    child = deepslim.load(tmp_path / "m" / "child")
    counted = count_ops(child, torch.zeros(1, 1, 28, 28)).macs
    assert counted == summary["macs"] and (counted <= 80_000) == (summary["violation"] == 0)
    assert summary["violation"] == 0  # some of the 7 candidates are within the limit, so the derived one is
    code, _, err = cli("nas", "enas", *SPACE, *RUN, "--macs", "nan", "--out", tmp_path / "nan")
    assert code == 2 and "invalid number value: 'nan'" in err
    code, _, err = cli("nas", "enas", *SPACE, *RUN, "--macs", "lots", "--out", tmp_path / "bad")
    assert code == 2 and "invalid number value: 'lots'" in err
    code, _, err = cli("nas", "enas", *SPACE, *RUN, "--macs", "-5", "--out", tmp_path / "neg")
    assert code == 2 and "max_macs" in err
