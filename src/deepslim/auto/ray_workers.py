"""`deepslim auto --ray ADDRESS|auto|local`: the search's workers as Ray tasks.

Each task is one ``search_worker`` (one CPU): it rebuilds the model and data from the spec and
joins the same study. The study must be reachable from every node: the journal file in ``OUT``
serves a cluster on this machine (``local``, or ``auto`` finding one started here); a cluster of
several machines needs ``--storage postgresql://...`` and ``OUT`` on a shared path.

Example:
    >>> run_on_ray(spec, workers=2, address="local")      # doctest: +SKIP
"""

from __future__ import annotations

import os

from ..core import DeepslimError, log


def _ray():
    try:
        import ray
    except ImportError as exc:
        raise DeepslimError("--ray needs Ray", hint="pip install 'deepslim[auto]' (or: pip install ray)") from exc
    return ray


def connect(address: str) -> None:
    """Join the cluster at ``address`` (``auto``: the one running here), or start one here (``local``)."""
    ray = _ray()
    if ray.is_initialized():
        return
    try:
        if address == "local":
            ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
                     object_store_memory=100 * 1024 * 1024)
        else:
            ray.init(address=address, log_to_driver=False)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DeepslimError(f"cannot join the Ray cluster at {address!r}: {reason}",
                            hint="start one with `ray start --head`, give its address, or use --ray local") from None


def _worker(spec: dict, offset: int) -> int:  # runs inside a Ray worker process
    from ..core.progress import set_quiet
    from .engine import search_worker

    set_quiet(True)
    return search_worker(spec, offset)


def run_on_ray(spec: dict, workers: int, address: str) -> int:
    """Run ``workers`` search workers as Ray tasks of one CPU each; returns the trials they finished."""
    ray = _ray()
    connect(address)
    gpus = 0.0
    if str(spec.get("device", "cpu")).startswith("cuda"):  # Ray hides GPUs from tasks that do not ask for one
        if not ray.cluster_resources().get("GPU"):
            raise DeepslimError("--device cuda, but the Ray cluster has no GPU", hint="use --device cpu with --ray")
        gpus = 1.0 / max(1, workers)  # the workers share one GPU
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(_worker)
    log(f"search: {workers} worker(s) as Ray tasks on {ray.cluster_resources().get('CPU', 0):g} CPUs")
    refs = [remote.remote(dict(spec, threads=1), i) for i in range(max(1, workers))]
    try:
        return sum(ray.get(refs))
    except KeyboardInterrupt:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise
    except ray.exceptions.RayTaskError as exc:
        cause = exc.as_instanceof_cause() if hasattr(exc, "as_instanceof_cause") else exc
        if isinstance(cause, DeepslimError):
            raise DeepslimError(cause.message, hint=cause.hint) from None
        raise
