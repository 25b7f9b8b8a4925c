"""`deepslim nas supernet | latency-table | search` on a tiny space and synthetic data."""

import json

import pytest

import deepslim
from deepslim.nas import OFASubnet, OFASupernet

SPACE = ["--space-option", "stem_channels=4", "--space-option", "widths=8,16", "--space-option", "strides=1,2",
         "--space-option", "depth_choices=1,2", "--space-option", "kernel_choices=3,5",
         "--space-option", "expand_choices=3,6", "--space-option", "head_channels=16"]
TRAIN = ["--data", "synthetic", "--subset", "256", "--epochs-per-phase", "1,1,1,1", "--batch-size", "64",
         "--calibration-size", "64", "--quiet"]
TABLE = ["--batch-sizes", "1,4", "--seconds", "0.001", "--rounds", "1", "--quality", "3", "--quiet"]
SEARCH = ["--budget", "4", "--population", "2", "--calibration-size", "64", "--quiet"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A trained tiny supernet folder with its latency table (built once for the module)."""
    from deepslim.cli import main

    folder = tmp_path_factory.mktemp("nas") / "ofa"
    assert main(["nas", "supernet", *SPACE, *TRAIN, "--out", str(folder)]) == 0
    assert main(["nas", "latency-table", str(folder), *TABLE]) == 0
    return folder


def test_help_explains_the_three_steps(cli):
    code, out, _ = cli("nas", "--help")
    assert code == 0 and all(step in out for step in ("supernet", "latency-table", "search"))
    assert "progressive shrinking" in out
    code, out, _ = cli("nas", "search", "--help")
    assert code == 0 and "--latency-ms" in out and "search.json" in out and "closest" in out
    code, out, _ = cli("nas", "latency-table", "--help")
    assert code == 0 and "--threads" in out and "latency.json" in out
    code, _, err = cli("nas", "serch")
    assert code == 2 and "unknown command 'serch'" in err and "search" in err


def test_supernet_folder_holds_the_trained_supernet_and_its_metadata(trained):
    assert not (trained / "checkpoint.pt").exists()
    net = deepslim.load(trained / "supernet")
    assert isinstance(net, OFASupernet) and net.space.widths == (8, 16) and net.space.depth_choices == (1, 2)
    meta = net.deepslim_metadata["nas"]
    assert meta["phases"] == ["largest", "kernel", "depth", "expand"]
    assert meta["epochs_per_phase"] == {"largest": 1, "kernel": 1, "depth": 1, "expand": 1}
    assert meta["data"]["name"] == "synthetic" and meta["data"]["subset"] == 256
    assert meta["space"]["widths"] == [8, 16] and meta["resumed"] is False
    assert set(meta["val_accuracy_after_recalibration"]) == {"largest", "smallest"}
    assert len(meta["history"]) == 4


def test_latency_table_file(trained):
    table = json.loads((trained / "latency.json").read_text())
    assert table["format"] == "deepslim-latency-table" and table["batch_sizes"] == [1, 4]
    assert len(table["entries"]) == 18 and table["environment"]["threads"] == 2
    assert table["quality"]["1"]["n"] == 3 and "kendall_tau" in table["quality"]["4"]


def test_search_saves_a_standalone_subnet_and_search_json(trained, cli, tmp_path):
    out = tmp_path / "best"
    code, stdout, _ = cli("nas", "search", trained, "--latency-ms", "1000", "--batch", "4", *SEARCH, "--out", out)
    assert code == 0
    assert "arch" in stdout and "val acc %" in stdout and "pred. ms (b4)" in stdout and "meets" in stdout
    model = deepslim.load(out)
    assert isinstance(model, OFASubnet)
    meta = model.deepslim_metadata
    result = json.loads((out / "search.json").read_text())
    assert result["feasible"] is True and len(result["history"]) == 4 and result["latency_batch"] == 4
    assert meta["nas"]["arch"] == result["best"]["arch"]
    assert meta["nas"]["search"]["strategy"] == "evolution" and meta["metrics"]["test_accuracy"] >= 0
    assert result["best"]["latency_ms"] > 0
    card = (out / "MODEL_CARD.md").read_text()
    assert card.startswith("# ofa-subnet found by evolution search in the supernet")
    assert json.dumps(result["best"]["arch"]) in card and "met:" in card
    code, stdout, _ = cli("eval", out, "--json")  # a standalone model: every verb applies
    assert code == 0 and json.loads(stdout)["accuracy"] == pytest.approx(meta["metrics"]["test_accuracy"])

    code, stdout, _ = cli("nas", "search", trained, "--macs", "1e9", "--strategy", "rl", *SEARCH, "--json",
                          "--out", tmp_path / "rl")
    assert code == 0 and json.loads(stdout)["strategy"] == "rl" and json.loads(stdout)["feasible"] is True
    assert len(json.loads((tmp_path / "rl" / "search.json").read_text())["controller"]) >= 4

    code, stdout, _ = cli("nas", "search", trained, "--macs", "1", "--strategy", "random", *SEARCH, "--json",
                          "--out", tmp_path / "closest")
    summary = json.loads(stdout)
    assert code == 0 and summary["feasible"] is False and "returning the closest" in summary["message"]
    assert (tmp_path / "closest" / "search.json").is_file()
    code, _, err = cli("nas", "search", trained, "--macs", "1", *SEARCH, "--out", tmp_path / "closest")
    assert code == 2 and "is not empty" in err


def test_search_refusals(trained, cli, tmp_path):
    untimed = tmp_path / "untimed"
    untimed.mkdir()
    for name in ("nas.json", "supernet"):
        src = trained / name
        if src.is_dir():
            import shutil

            shutil.copytree(src, untimed / name)
        else:
            (untimed / name).write_text(src.read_text())
    code, _, err = cli("nas", "search", untimed, "--latency-ms", "1", *SEARCH, "--out", tmp_path / "a")
    assert code == 2 and "no latency.json" in err and f"deepslim nas latency-table {untimed}" in err
    assert len(err.strip().splitlines()) == 1
    code, _, err = cli("nas", "search", trained, *SEARCH, "--out", tmp_path / "b")
    assert code == 2 and "needs a limit" in err
    code, _, err = cli("nas", "search", trained, "--macs", "5M", "--batch", "4", *SEARCH, "--out", tmp_path / "c")
    assert code == 2 and "--batch has no effect without --latency-ms" in err
    code, _, err = cli("nas", "search", trained, "--latency-ms", "1", "--batch", "64", *SEARCH, "--out", tmp_path / "d")
    assert code == 2 and "no batch size 64" in err
    (untimed / "latency.json").write_text('{"format": "deepslim-latency-table", "vers')
    code, _, err = cli("nas", "search", untimed, "--latency-ms", "1", *SEARCH, "--out", tmp_path / "e")
    assert code == 2 and "not valid JSON" in err
    code, _, err = cli("nas", "search", trained, "--macs", "5Q", *SEARCH, "--out", tmp_path / "g")
    assert code == 2 and "invalid number value: '5Q'" in err
    code, _, err = cli("nas", "search", tmp_path / "nowhere", "--macs", "5M", *SEARCH, "--out", tmp_path / "f")
    assert code == 2 and "not a `deepslim nas supernet` folder" in err
    assert not any((tmp_path / n).exists() for n in "abcdefg")


def test_supernet_refusals(trained, cli, tmp_path):
    code, _, err = cli("nas", "supernet", *TRAIN, "--out", trained)  # the default space, not the tiny one
    assert code == 2 and "another search space" in err
    code, _, err = cli("nas", "supernet", *SPACE, *TRAIN, "--out", trained, "--resume")
    assert code == 2 and "already holds a trained supernet" in err
    code, _, err = cli("nas", "supernet", *SPACE, *TRAIN, "--out", tmp_path / "new", "--resume")
    assert code == 2 and "nothing to resume" in err
    code, _, err = cli("nas", "supernet", *SPACE, *TRAIN, "--epochs-per-phase", "1,1", "--out", tmp_path / "x")
    assert code == 2 and "four non-negative integers" in err
    code, _, err = cli("nas", "supernet", *SPACE, "--space-option", "widths", *TRAIN, "--out", tmp_path / "y")
    assert code == 2 and "is not KEY=VALUE" in err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    code, _, err = cli("nas", "supernet", *SPACE, *TRAIN, "--out", tmp_path / "other")
    assert code == 2 and "not a `deepslim nas` folder" in err
    code, _, err = cli("nas", "latency-table", tmp_path / "other")
    assert code == 2 and "not a `deepslim nas supernet` folder" in err


def test_interrupted_training_resumes(cli, tmp_path, monkeypatch):
    import deepslim.nas.shrinking as shrinking

    real, calls = shrinking.save_checkpoint, []

    def interrupt_after_two(path, state):
        real(path, state)
        calls.append(state["epoch"])
        if len(calls) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(shrinking, "save_checkpoint", interrupt_after_two)
    out = tmp_path / "ofa"
    code, _, err = cli("nas", "supernet", *SPACE, *TRAIN, "--out", out)
    assert code == 130 and "--resume" in err and (out / "checkpoint.pt").is_file()
    code, _, err = cli("nas", "supernet", *SPACE, *TRAIN, "--out", out)
    assert code == 2 and "interrupted run" in err and "--resume" in err
    monkeypatch.setattr(shrinking, "save_checkpoint", real)
    code, _, err = cli("nas", "supernet", *SPACE, *TRAIN, "--epochs-per-phase", "2,1,1,1", "--out", out, "--resume")
    assert code == 2 and "other training options" in err
    code, stdout, _ = cli("nas", "supernet", *SPACE, *TRAIN, "--out", out, "--resume", "--json")
    assert code == 0 and json.loads(stdout)["space"] == "ofa-mbconv"
    history = deepslim.load(out / "supernet").deepslim_metadata["nas"]["history"]
    assert [h["phase"] for h in history] == ["depth", "expand"]  # this session trained only the last two phases
