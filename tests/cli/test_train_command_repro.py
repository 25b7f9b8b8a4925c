"""`deepslim train` is reproducible: same seed, same weights; an interrupted and resumed run equals a straight one."""

import json

import pytest
import torch
from safetensors.torch import load_file

import deepslim.cli.train as train_command
from deepslim.train import Callback, Trainer

# A small CNN with dropout (the resumed run must restore the RNG too), on a few synthetic images.
BASE = ("train", "--model", "fmnist-cnn", "--model-arg", "widths=8,16,16", "--model-arg", "hidden=32",
        "--data", "synthetic", "--subset", "240", "--batch-size", "32", "--lr", "0.05", "--quiet")


def weights(out):
    return load_file(str(out / "weights.safetensors"))


def assert_identical(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


class CtrlC(Callback):
    """Raises KeyboardInterrupt, as Ctrl-C would, at the first step of epoch ``epoch`` (0-based)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_step_begin(self, trainer, step):
        if trainer.epoch == self.epoch:
            raise KeyboardInterrupt


def interrupt_in_epoch(monkeypatch, epoch: int):
    """Make the next `deepslim train` stop with Ctrl-C in ``epoch`` (0-based)."""

    class InterruptedTrainer(Trainer):
        def __init__(self, *args, callbacks=(), **kwargs):
            super().__init__(*args, callbacks=[*callbacks, CtrlC(epoch)], **kwargs)

    monkeypatch.setattr(train_command, "Trainer", InterruptedTrainer)


def test_same_seed_gives_identical_weights_and_another_seed_does_not(cli, tmp_path):
    runs = {}
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        code, _, err = cli(*BASE, "--epochs", "1", "--seed", seed, "--out", tmp_path / name)
        assert code == 0, err
        runs[name] = weights(tmp_path / name)
    assert_identical(runs["a"], runs["b"])
    assert any(not torch.equal(runs["a"][k], runs["c"][k]) for k in runs["a"])
    meta = json.loads((tmp_path / "a" / "metadata.json").read_text())
    assert meta["training"]["threads"] == torch.get_num_threads() and meta["versions"]["torch"] == torch.__version__
    assert not (tmp_path / "a" / "checkpoint").exists()  # a finished run leaves no empty checkpoint folder


def test_interrupted_then_resumed_run_equals_a_straight_run(cli, tmp_path, monkeypatch):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert cli(*BASE, "--epochs", "2", "--out", straight)[0] == 0

    interrupt_in_epoch(monkeypatch, 1)
    code, _, err = cli(*BASE, "--epochs", "2", "--out", resumed)
    checkpoint = resumed / "checkpoint" / "last.pt"
    assert code == 130 and len(err.strip().splitlines()) == 1
    assert err.startswith(f"error: interrupted — 1 epoch of 2 is saved in {checkpoint}; ")
    assert "rerun the same command with --resume to continue from epoch 2" in err
    assert checkpoint.is_file() and not (resumed / "weights.safetensors").exists()

    monkeypatch.undo()
    code, _, err = cli(*BASE, "--epochs", "2", "--out", resumed, "--resume")
    assert code == 0, err
    assert_identical(weights(straight), weights(resumed))
    history = json.loads((resumed / "metadata.json").read_text())["training"]["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    assert not (resumed / "checkpoint").exists()


def test_interrupted_in_the_first_epoch_says_nothing_was_saved(cli, tmp_path, monkeypatch):
    out = tmp_path / "run"
    interrupt_in_epoch(monkeypatch, 0)
    code, _, err = cli(*BASE, "--epochs", "1", "--out", out)
    assert code == 130
    assert err.strip() == "error: interrupted — no epoch had finished, nothing was saved; " \
                          "rerun the same command to start again"
    monkeypatch.undo()
    assert cli(*BASE, "--epochs", "1", "--out", out)[0] == 0  # the same command does start again


@pytest.mark.parametrize("epochs, wording", [(1, "for 1 epoch on"), (2, "for 2 epochs on")])
def test_the_start_line_counts_epochs_in_words(cli, tmp_path, epochs, wording):
    args = [a for a in BASE if a != "--quiet"]
    code, _, err = cli(*args, "--epochs", epochs, "--out", tmp_path / "run")
    assert code == 0 and wording in err.splitlines()[0]
