"""Multi-process training with ``torch.distributed`` DDP: gloo on CPU, NCCL on GPU.

``launch(fn, nproc, *args)`` runs ``fn(*args)`` on ``nproc`` processes started with
``torch.multiprocessing`` spawn (what ``torchrun`` does on one machine) and joined in one process
group; ``Trainer.fit`` sees the group and trains with DDP. The global batch stays
``TrainConfig.batch_size``: every rank draws the same global batch (shuffle and augmentation are
a pure function of (seed, epoch), so resume stays exact) and keeps its contiguous share of it
(``ShardedLoader``); DDP averages the gradients, which equals the single-process gradient of the
whole batch up to float rounding. Rank 0 alone writes checkpoints and logs.

Example:
    >>> from deepslim.testing import tiny_data, toy_mlp
    >>> model = toy_mlp()
    >>> config = TrainConfig(epochs=1, batch_size=32)
    >>> history = fit_distributed(model, tiny_data().train, config, nproc=2)  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import sys
import tempfile
import threading
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from tqdm import tqdm

from ..core import DeepslimError, set_quiet
from ..core.progress import is_quiet
from ..core.text import plural
from .config import TrainConfig


def world_size() -> int:
    """Processes in the running group; 1 outside one."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank; 0 outside a group."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes files and logs (rank 0, or the only process)."""
    return rank() == 0


def rank_device(device: torch.device | str) -> torch.device:
    """The device this rank trains on: its own GPU (``cuda:<rank>``) under NCCL, else ``device``."""
    device = torch.device(device)
    return torch.device("cuda", rank()) if device.type == "cuda" and world_size() > 1 else device


def cpu_cores() -> int:
    """Cores this process may run on (the affinity mask, as a container or ``taskset`` sets it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def check_nproc(nproc, device: torch.device | str, batch_size: int | None = None) -> None:
    """Refuse a process count this machine (cores on CPU, GPUs on CUDA) or the batch size cannot take.

    Example:
        >>> check_nproc(1, "cpu", batch_size=128)
        >>> check_nproc(0, "cpu")  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        deepslim.core.errors.DeepslimError: --nproc must be at least 1, got 0 (...)
    """
    if isinstance(nproc, bool) or not isinstance(nproc, int) or nproc < 1:
        raise DeepslimError(f"--nproc must be at least 1, got {nproc}",
                            hint="leave --nproc out to train in one process")
    device = torch.device(device)
    have, what = (torch.cuda.device_count(), "GPU") if device.type == "cuda" else (cpu_cores(), "CPU core")
    if nproc > have:
        raise DeepslimError(f"--nproc {nproc} is more than the {plural(have, what)} this machine has",
                            hint=f"use --nproc {have} or fewer")
    if batch_size is not None and batch_size % nproc:
        raise DeepslimError(f"--batch-size {batch_size} does not split evenly over {nproc} processes",
                            hint=f"use a batch size that is a multiple of {nproc}, "
                                 f"e.g. {batch_size - batch_size % nproc or nproc}")


class ShardedLoader:
    """This rank's contiguous share of every global batch of ``loader`` (a ``BatchLoader``).

    Every rank draws the whole global batch (same shuffle, same augmentation as one process) and
    keeps ``batch_size / world`` samples of it, so the union over ranks is the single-process batch.

    Example:
        >>> from deepslim.data import BatchLoader, load_dataset
        >>> shard = ShardedLoader(BatchLoader(load_dataset("synthetic", subset=64).train, 32), rank=1, world=2)
        >>> next(iter(shard))[0].shape
        torch.Size([16, 1, 28, 28])
    """

    def __init__(self, loader, rank: int | None = None, world: int | None = None):
        if rank is None:
            rank = dist.get_rank() if world_size() > 1 else 0
        self.loader, self.rank = loader, rank
        self.world = world_size() if world is None else world
        if loader.batch_size % self.world:
            raise DeepslimError(f"the batch size {loader.batch_size} does not split evenly over {self.world} processes",
                                hint=f"use a batch size that is a multiple of {self.world}")
        self.batch_indices = None

    def set_epoch(self, epoch: int) -> None:
        self.loader.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for images, labels in self.loader:
            share = len(labels) // self.world  # drop_last training batches are full, so every share is equal
            part = slice(self.rank * share, (self.rank + 1) * share)
            self.batch_indices = self.loader.batch_indices[part]  # distillation's cached teacher outputs follow
            yield images[part], labels[part]


def wrap(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` in DDP (which broadcasts rank 0's weights and averages gradients in backward)."""
    ids = [torch.cuda.current_device() if device.index is None else device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids)


def sum_over_ranks(*values: float, device: torch.device | str = "cpu") -> list[float]:
    """Each value summed over all ranks (epoch loss and metric sums), as Python floats."""
    device = torch.device(device)
    t = torch.tensor(values, dtype=torch.float64, device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return t.tolist()


@contextlib.contextmanager
def quiet_unless_main():
    """Silence logs and progress bars on ranks other than 0; nothing changes in a single process."""
    if world_size() == 1 or is_main():
        yield
        return
    was = is_quiet()
    set_quiet(True)
    try:
        yield
    finally:
        set_quiet(was)


def launch(fn, nproc: int, *args, device: torch.device | str = "cpu"):
    """Run ``fn(*args)`` on ``nproc`` spawned processes in one DDP group; returns rank 0's result.

    ``fn`` and ``args`` must pickle (``fn`` a module-level function); their tensors reach every rank
    as one shared-memory copy, so ``fn`` copies what it changes. On CPU each process gets
    ``cores // nproc`` threads and the group uses gloo; on CUDA rank r uses ``cuda:r`` and NCCL.
    A ``DeepslimError`` on any rank is raised here as the same one-line error.
    """
    device = torch.device(device)
    check_nproc(nproc, device)
    threads = max(1, torch.get_num_threads() // nproc)
    with tempfile.TemporaryDirectory(prefix="deepslim-ddp-") as tmp:
        try:
            mp.spawn(_worker, args=(nproc, device.type, threads, is_quiet(), tmp, fn, args), nprocs=nproc, join=True)
        except (mp.ProcessExitedException, mp.ProcessRaisedException):
            errors = sorted(Path(tmp).glob("error-*.json"))
            if errors:  # a rank refused with a DeepslimError: raise that, not the spawn machinery's report
                raise DeepslimError(**json.loads(errors[0].read_text())) from None
            raise
        return torch.load(Path(tmp) / "result.pt", weights_only=False)  # our own file, written just now


def _worker(rank_: int, nproc: int, device_type: str, threads: int, quiet: bool, tmp: str, fn, args) -> None:
    set_quiet(quiet or rank_ != 0)
    # A thread lock for tqdm: its default one is a named semaphore that only the interpreter's
    # finalization (skipped below) would unlink.
    tqdm.set_lock(threading.RLock())
    if device_type == "cuda":
        torch.cuda.set_device(rank_)
    else:  # the cores are shared out: nproc processes each on all cores would oversubscribe them
        torch.set_num_threads(threads)
    # A file in a private folder to meet at: no TCP port to pick (or to collide with another run's)
    dist.init_process_group("nccl" if device_type == "cuda" else "gloo", init_method=f"file://{tmp}/rendezvous",
                            rank=rank_, world_size=nproc)
    code = 0
    try:
        result = fn(*args)
        if rank_ == 0:
            torch.save(result, Path(tmp) / "result.pt")
        dist.barrier()  # no rank tears the group down while another still talks over it
    except DeepslimError as exc:
        (Path(tmp) / f"error-{rank_}.json").write_text(json.dumps({"message": exc.message, "hint": exc.hint}))
        code = 2
    finally:
        dist.destroy_process_group()
    # Leave without the interpreter's finalization: gloo's threads, torn down there, abort about one
    # run in thirty ("terminate called without an active exception", SIGABRT) after all work is done.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def fit_distributed(model: nn.Module, train_data, config: TrainConfig | None = None, *, nproc: int,
                    device="cpu", **kwargs) -> list[dict]:
    """``Trainer(model, config, ...).fit(train_data, ...)`` on ``nproc`` processes; ``model`` gets the
    trained weights and the history is returned. ``kwargs`` go to ``Trainer`` (``task``, ``callbacks``)
    or ``fit`` (``val_data``, ``checkpoint_path``, ``resume``); all of it must pickle.
    """
    config = config or TrainConfig()
    check_nproc(nproc, device, config.batch_size)
    state, history = launch(_fit_rank, nproc, model, train_data, config, torch.device(device), kwargs, device=device)
    model.load_state_dict(state)
    return history


def _fit_rank(model, train_data, config, device, kwargs):
    from .loop import Trainer  # loop imports this module

    # spawn hands every rank the same shared-memory tensors: each rank steps its own copy of the
    # weights, or all of them would write into one (the data is only read, so it stays shared)
    model = copy.deepcopy(model)
    fit_keys = ("val_data", "checkpoint_path", "resume")
    fit_kwargs = {k: kwargs.pop(k) for k in fit_keys if k in kwargs}
    history = Trainer(model, config, device=rank_device(device), **kwargs).fit(train_data, **fit_kwargs)
    return {k: v.cpu() for k, v in model.state_dict().items()}, history
