"""The Optuna study behind `deepslim auto`: where it is stored, and how a dead worker's trial is retried.

- Default: a journal file in ``OUT`` (``study.journal``). Several local processes may share it
  (the journal is file-locked); a rerun after ``kill -9`` loads it and redoes nothing finished.
  A trial left RUNNING by a process of this machine that no longer exists is marked failed and
  its plan queued again.
- ``--storage postgresql://...`` (any SQLAlchemy URL): Optuna's RDB storage with a heartbeat,
  so a worker on another machine that dies has its trial failed after the grace period and
  retried once (``RetryHeartbeatStaleTrialCallback``; older Optuna: ``RetryFailedTrialCallback``).

Example:
    >>> storage = open_storage(None, Path("runs/auto"))                       # doctest: +SKIP
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import optuna

from ..core import DeepslimError, log

JOURNAL = "study.journal"
HEARTBEAT_SECONDS = 30
MAX_RETRIES = 2  # a killed trial's plan is queued again at most this many times
GRACE_SECONDS = 120


def worker_id() -> dict:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def open_storage(url: str | None, out: Path):
    """The study's storage: the journal in ``out``, or the database at ``url`` (checked reachable now)."""
    if not url:
        from optuna.storages.journal import JournalFileBackend

        out.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(JournalFileBackend(str(out / JOURNAL)))
    if "://" not in url:
        raise DeepslimError(f"--storage {url!r} is not a database URL",
                            hint="e.g. --storage postgresql://user:password@host:5432/db, or leave it out to keep "
                                 "the study in OUT")
    try:
        return optuna.storages.RDBStorage(
            _driver_url(url), heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS,
            **_retry_once(),
            engine_kwargs={"pool_pre_ping": True, **({"connect_args": {"connect_timeout": 10}}
                                                     if url.startswith("postgresql") else {})})
    except ImportError as exc:
        # Optuna rewords the ImportError; the module's name is on its cause (else guessed from the URL)
        driver = getattr(exc.__cause__, "name", None) or (
            "psycopg" if url.startswith("postgresql") else f"a {url.split(':', 1)[0]} driver")
        raise DeepslimError(f"--storage {_redact(url)}: the database driver is missing ({driver})",
                            hint="pip install 'deepslim[auto]' (psycopg for PostgreSQL)") from exc
    except Exception as exc:  # SQLAlchemy's OperationalError and friends: say which URL and why, in one line
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise DeepslimError(f"cannot reach the study storage {_redact(url)}: {reason}",
                            hint="check the host, port, user and database, or leave --storage out to keep "
                                 "the study in OUT") from None


def _retry_once() -> dict:
    """A stale trial (its worker stopped beating) is retried once: Optuna 4.9+ names this callback
    ``heartbeat_stale_trial_callback`` (``failed_trial_callback`` is deprecated there)."""
    import warnings

    if hasattr(optuna.storages, "RetryHeartbeatStaleTrialCallback"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return {"heartbeat_stale_trial_callback": optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=1)}
    return {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)}


def _driver_url(url: str) -> str:
    """``postgresql://`` with the driver deepslim[auto] installs (psycopg 3): SQLAlchemy 2.0 would
    otherwise look for psycopg2."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def _redact(url: str) -> str:
    """The URL without its password, for messages and metrics.json."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url


def redact(url: str | None) -> str | None:
    return _redact(url) if url else None


def recover_stale_trials(study: optuna.Study) -> int:
    """Fail the RUNNING trials of processes on this machine that are gone (``kill -9``), and queue
    their plans again; returns how many. Trials of live processes (another worker) are left alone."""
    host, stale = socket.gethostname(), 0
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        owner = trial.user_attrs.get("worker") or {}
        if owner.get("host") != host or _alive(owner.get("pid")):
            continue
        study._storage.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.FAIL)
        retries = int(trial.user_attrs.get("retries", 0))
        if retries < MAX_RETRIES:  # a plan that kills its process every time is not queued for ever
            # a queued plan killed before it suggested anything has no params yet: its queued values stand in
            plan = trial.params or trial.system_attrs.get("fixed_params") or {}
            label = {"starting_plan": trial.user_attrs["starting_plan"]} if "starting_plan" in trial.user_attrs else {}
            study.enqueue_trial(plan, user_attrs={"retry_of": trial.number, "retries": retries + 1, **label},
                                skip_if_exists=False)
        stale += 1
    if stale:
        log(f"{stale} trial(s) left running by a killed process: marked failed, their plans queued again")
    return stale


def _alive(pid) -> bool:
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Optuna 5 reads constraints set on the trial (``Trial.set_constraint``); older ones take a function.
TRIAL_CONSTRAINTS = hasattr(optuna.trial.Trial, "set_constraint")


def make_sampler(name: str, seed: int, constraints):
    """TPE (multi-objective, constraint-aware) by default; ``random`` is the peer row's baseline search."""
    kwargs = {} if TRIAL_CONSTRAINTS else {"constraints_func": constraints}
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=16, **kwargs)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, n_startup_trials=8, **kwargs)
    raise DeepslimError(f"unknown sampler '{name}'", hint="choose tpe, nsga2 or random")


def constraint_of(trial) -> list[float]:
    """Optuna's constraint (<= 0 is feasible): proxy accuracy points lost beyond what the search allows."""
    return [float(trial.user_attrs.get("constraint", 1e9))]
