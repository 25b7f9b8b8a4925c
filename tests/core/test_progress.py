"""Progress within an epoch on a terminal (even one that reports no size); none when quiet or not a terminal."""

import os
import sys
import threading
import time

import pytest

import deepslim
from deepslim.core import set_quiet
from deepslim.testing import tiny_data
from deepslim.train import Callback, TrainConfig, Trainer

pty = pytest.importorskip("pty")  # POSIX only


class Slow(Callback):
    """Long enough steps for the bar to redraw (tqdm redraws at most every 0.1 s)."""

    def on_step_end(self, trainer, step, loss):
        time.sleep(0.12)


def train_on_a_terminal(monkeypatch, quiet: bool = False) -> str:
    """Train one short epoch with stderr on a fresh pseudo-terminal (size 0x0, as `docker exec -t` gives);
    returns what the terminal received."""
    master, replica = pty.openpty()
    assert os.get_terminal_size(replica).columns == 0
    chunks = []

    def drain():  # keep reading, so a full terminal buffer never blocks the training
        while True:
            try:
                data = os.read(master, 4096)
            except OSError:  # the other end was closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    terminal = os.fdopen(replica, "w", buffering=1)
    monkeypatch.setattr(sys, "stderr", terminal)
    set_quiet(quiet)
    try:
        Trainer(deepslim.create_model("lenet5"), TrainConfig(epochs=1, batch_size=32),
                callbacks=[Slow()]).fit(tiny_data(n_train=140).train)
    finally:
        set_quiet(False)
        monkeypatch.undo()
        terminal.close()
    reader.join(timeout=5)
    os.close(master)
    return b"".join(chunks).decode(errors="replace")


def test_a_terminal_shows_a_bar_with_the_running_loss(monkeypatch):
    shown = train_on_a_terminal(monkeypatch)
    assert "epoch 1/1:" in shown and "/4 [" in shown  # the bar over the epoch's 4 batches
    assert "loss=" in shown and "train=" in shown
    assert "epoch 1/1  loss" in shown  # and the epoch's summary line


def test_quiet_silences_the_bar_and_the_lines(monkeypatch):
    assert train_on_a_terminal(monkeypatch, quiet=True) == ""


def test_no_bar_when_stderr_is_not_a_terminal(capsys):
    Trainer(deepslim.create_model("lenet5"), TrainConfig(epochs=1, batch_size=32)).fit(tiny_data(n_train=70).train)
    err = capsys.readouterr().err
    assert err.startswith("epoch 1/1  loss") and "\r" not in err and "it/s" not in err
