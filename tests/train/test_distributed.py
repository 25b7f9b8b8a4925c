"""Multi-process training (DDP on CPU, gloo, spawn) equals one process on the same global batch."""

import copy
import json

import pytest
import torch

from deepslim.core import DeepslimError
from deepslim.data import BatchLoader
from deepslim.testing import tiny_data, toy_mlp
from deepslim.train import Callback, TrainConfig, Trainer
from deepslim.train.distributed import ShardedLoader, check_nproc, cpu_cores, fit_distributed

two_cores = pytest.mark.skipif(cpu_cores() < 2, reason="two training processes need two CPU cores")

# Float tolerance: the ranks' gradients are averaged by an all-reduce and their kernels run on one
# thread each, so the sums are taken in another order than in one process; nothing else differs.
ATOL = 1e-6


@two_cores
def test_two_processes_equal_one_on_the_same_global_batch():
    # No BatchNorm (toy_mlp); SGD with Nesterov momentum 0.9 and weight decay (the defaults), cosine
    # schedule, augmentation on: every rank draws the same augmented global batch and keeps half.
    data = tiny_data(n_train=256)
    cfg = TrainConfig(epochs=2, batch_size=64, lr=0.05, seed=3)  # 4 steps an epoch, 8 in all
    torch.manual_seed(0)
    one = toy_mlp()
    two = copy.deepcopy(one)
    single = Trainer(one, cfg, device="cpu").fit(data.train)
    multi = fit_distributed(two, data.train, cfg, nproc=2)
    worst = max((a - b).abs().max().item() for a, b in zip(one.state_dict().values(), two.state_dict().values()))
    moved = max((a - b).abs().max().item() for a, b in zip(one.state_dict().values(), toy_mlp().state_dict().values()))
    print(f"largest difference {worst:.3g} (weights moved up to {moved:.3g})")
    assert worst < ATOL < moved, worst
    assert [h["epoch"] for h in multi] == [1, 2]
    for s, m in zip(single, multi):  # the epoch figures cover the whole global batches on rank 0 too
        assert m["train_loss"] == pytest.approx(s["train_loss"], rel=1e-4)
        assert m["train_accuracy"] == pytest.approx(s["train_accuracy"])


@two_cores
def test_a_run_resumed_on_two_processes_ends_where_one_process_does(tmp_path):
    # The checkpoint of one process stopped after epoch 1; two processes read it and train epoch 2 on the
    # batches of (seed, epoch 2), and rank 0 alone writes the checkpoint at the end.
    class StopAfterFirstEpoch(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            trainer.stop_training = True

    data = tiny_data(n_train=192)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05)
    torch.manual_seed(0)
    straight = toy_mlp()
    start = copy.deepcopy(straight)
    Trainer(straight, cfg, device="cpu").fit(data.train)
    ckpt = tmp_path / "last.pt"
    Trainer(start, cfg, device="cpu", callbacks=[StopAfterFirstEpoch()]).fit(data.train, checkpoint_path=ckpt)
    resumed = toy_mlp()
    history = fit_distributed(resumed, data.train, cfg, nproc=2, checkpoint_path=ckpt, resume=True)
    assert [h["epoch"] for h in history] == [1, 2] and torch.load(ckpt)["epochs_done"] == 2
    for a, b in zip(straight.state_dict().values(), resumed.state_dict().values()):
        assert (a - b).abs().max().item() < ATOL


def test_each_rank_takes_its_contiguous_share_of_every_global_batch():
    data = tiny_data(n_train=96)
    whole = BatchLoader(data.train, 32, shuffle=True, seed=1, drop_last=True)
    shards = [ShardedLoader(BatchLoader(data.train, 32, shuffle=True, seed=1, drop_last=True), rank=r, world=2)
              for r in range(2)]
    for loader in (whole, *shards):
        loader.set_epoch(1)
    for (x, y), (x0, y0), (x1, y1) in zip(whole, *shards):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    assert len(shards[0]) == len(whole) >= 2 and len(shards[1].batch_indices) == 16


def test_bad_process_counts_are_refused_in_one_line():
    with pytest.raises(DeepslimError, match="at least 1"):
        check_nproc(0, "cpu")
    with pytest.raises(DeepslimError, match=f"more than the {cpu_cores()} CPU core"):
        check_nproc(cpu_cores() + 1, "cpu")
    with pytest.raises(DeepslimError, match="does not split evenly over 2"):
        check_nproc(2, "cpu", batch_size=33)
    if torch.cuda.device_count() == 0:
        with pytest.raises(DeepslimError, match="more than the 0 GPUs"):
            check_nproc(1, "cuda")


# `deepslim train --nproc`: lenet5 has neither BatchNorm nor dropout, so two processes give one's weights.
# on the CPU (gloo) wherever the suite runs: the process-count checks differ on a GPU (one process per GPU)
CLI_RUN = ("train", "--model", "lenet5", "--data", "synthetic", "--subset", "160", "--epochs", "1",
           "--batch-size", "32", "--lr", "0.05", "--quiet", "--device", "cpu")


@two_cores
def test_train_command_on_two_processes_saves_a_loadable_model(cli, tmp_path):
    from safetensors.torch import load_file

    from deepslim import load

    code, out, err = cli(*CLI_RUN, "--out", tmp_path / "two", "--nproc", "2")
    assert code == 0, err
    model = load(tmp_path / "two")
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 10)
    meta = json.loads((tmp_path / "two" / "metadata.json").read_text())
    assert meta["training"]["processes"] == 2 and "test_accuracy" in meta["metrics"]
    assert not (tmp_path / "two" / "checkpoint").exists()  # rank 0 cleaned up as a single process does
    assert cli(*CLI_RUN, "--out", tmp_path / "one", "--nproc", "1")[0] == 0
    assert "processes" not in json.loads((tmp_path / "one" / "metadata.json").read_text())["training"]
    one, two = load_file(str(tmp_path / "one" / "weights.safetensors")), \
        load_file(str(tmp_path / "two" / "weights.safetensors"))
    assert max((one[k] - two[k]).abs().max().item() for k in one) < ATOL


@pytest.mark.parametrize("nproc, batch, message", [
    ("0", "32", "--nproc must be at least 1, got 0"),
    (str(cpu_cores() + 1), "32", f"--nproc {cpu_cores() + 1} is more than the"),
    ("2", "33", "--batch-size 33 does not split evenly over 2 processes"),
])
def test_train_command_refuses_bad_process_counts_before_touching_out(cli, tmp_path, nproc, batch, message):
    args = [a if a != "32" else batch for a in CLI_RUN]
    code, out, err = cli(*args, "--out", tmp_path / "run", "--nproc", nproc)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "run").exists()


@two_cores
def test_an_error_on_the_ranks_comes_back_as_the_same_one_line_error(tmp_path):
    with pytest.raises(DeepslimError, match="nothing to resume"):
        fit_distributed(toy_mlp(), tiny_data(n_train=64).train, TrainConfig(epochs=1, batch_size=32), nproc=2,
                        checkpoint_path=tmp_path / "none.pt", resume=True)
