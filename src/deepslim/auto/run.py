"""`deepslim auto`: a model, data and a target in; the best plan found, its model, the Pareto front out.

Layout of ``OUT``::

    auto.json          the run's settings (a resume or a second worker must match them) and time spent
    study.journal      the Optuna study (unless --storage names a database)
    input/model        the input model, as every worker loads it
    baseline/          the input model at the proxy fidelity (validation score, ONNX, latency)
    trials/NNNN/       each proxy trial: its stages, proxy.json
    finalists/trial-NNNN/  each finalist's full `deepslim compress` run
    model/, model.onnx, recipe.yaml, metrics.json, report.html   the result

Phases: (1) the input model is measured at the proxy fidelity; (2) Optuna searches plans with
short fine-tunes on a subset, scored on the validation split, latency measured per trial; the
search stops early enough to leave time for (3) full runs of up to top-k plans, scored on the test
split, each picked after the runs before it have measured how much the proxy overstates the loss
(``picking.py``); (4) the finalists and the input model are timed together in turns; the fastest finalist
within the accuracy bound is published. A rerun of the same command resumes each phase.

Example:
    >>> result = auto_compress(model, data, AutoConfig(parse_target("speedup>=6")), "runs/auto",
    ...                        device=torch.device("cpu"), data_spec={"name": "fashion-mnist"})  # doctest: +SKIP
    >>> result["status"]                                                # doctest: +SKIP
    'met'
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from ..core import DeepslimError, log
from ..core.errors import Interrupted
from ..export import save
from ..export.files import write_json_atomic
from .engine import open_study, run_workers
from .finalists import run_finalists
from .picking import FinalistPicker
from .publish import publish_result
from .result import choose, pareto_front, status_of, trial_rows
from .retime import RetimeLog, apply_retimed, retime_candidates
from .space import space_epochs, space_for
from .study import JOURNAL, recover_stale_trials, redact
from .target import Target, format_seconds
from .trial import ProxyRun

STATE = "auto.json"


@dataclass
class AutoConfig:
    """Settings of an auto run. ``proxy_*`` shape the cheap trials; ``top_k`` plans get a full run."""

    target: Target
    max_drop: float = 0.5
    budget_s: float = 7200.0
    batch: int = 1
    trials: int | None = None
    proxy_images: int = 8192
    proxy_epoch_scale: float = 0.15
    proxy_slack: float = 3.0     # a short fine-tune loses more than a full one (2-3 points on the flagship)
    top_k: int = 3
    sampler: str = "tpe"
    seed: int = 0
    workers: int = 1
    storage: str | None = None
    study_name: str = "deepslim-auto"
    ray: str | None = None
    latency_seconds: float = 0.5
    final_latency_seconds: float = 1.0
    retime: int = 8              # the most promising plans timed again, together, before the pick
    search_only: bool = False    # add trials to a shared study until the budget ends; another run finishes them
    starting_plans: bool = True  # a new study runs the space's starting plans (the shipped recipes) first

    def fingerprint(self) -> dict:
        """What a resumed run or a joining worker must share with the run that started the study."""
        return {"target": str(self.target), "max_drop": self.max_drop, "batch": self.batch,
                "proxy_images": self.proxy_images, "proxy_epoch_scale": self.proxy_epoch_scale,
                "proxy_slack": self.proxy_slack, "sampler": self.sampler, "seed": self.seed,
                "study_name": self.study_name}


def _prepare(out: Path, config: AutoConfig, overwrite: bool, fingerprint: dict) -> dict:
    state_file = out / STATE
    if out.exists() and not out.is_dir():
        raise DeepslimError(f"--out {out} exists and is not a folder", hint="choose another --out")
    if state_file.is_file():
        import json

        state = json.loads(state_file.read_text())
        if overwrite:
            import shutil

            shutil.rmtree(out)
        elif state.get("done"):
            raise DeepslimError(f"--out {out} already holds a finished auto run",
                                hint="use --overwrite to replace it, or choose another folder")
        elif state["fingerprint"] != fingerprint:
            diff = {k: v for k, v in fingerprint.items() if state["fingerprint"].get(k) != v}
            raise DeepslimError(f"--out {out} holds an auto run with other settings ({', '.join(diff)})",
                                hint="rerun with the same settings to resume, or use --overwrite to start over")
        else:
            return state
    elif out.is_dir() and any(out.iterdir()):
        raise DeepslimError(f"--out {out} holds files that are not a deepslim auto run; refusing to use it",
                            hint="choose another folder")
    out.mkdir(parents=True, exist_ok=True)
    state = {"fingerprint": fingerprint, "spent_s": 0.0, "done": False}
    write_json_atomic(state_file, state)
    return state


def _train_estimate(proxy: ProxyRun, plan_epochs: int, config: AutoConfig) -> float:
    """Seconds one proxy fine-tune takes here: one epoch on 256 samples, timed, scaled up."""
    from ..pipeline.recipe import Finetune
    from .trial import proxy_data

    task = copy.copy(proxy.task)
    task.data = proxy_data(proxy.data, 256)
    n = len(task.data.train)
    if hasattr(task.data.val, "take"):  # images: the per-epoch validation pass, cut like the training split
        task.data = dataclasses.replace(task.data, val=task.data.val.take(torch.arange(min(256, len(task.data.val)))))
    started = time.perf_counter()
    task.finetune(copy.deepcopy(proxy.model), proxy.teacher, Finetune(epochs=1, distill=True,
                                                                                   batch_size=min(128, n)), [])
    per_sample = (time.perf_counter() - started) / n
    return per_sample * len(proxy.data.train) * max(1, round(plan_epochs * config.proxy_epoch_scale))


def auto_compress(model, data, config: AutoConfig, out, *, device: torch.device, data_spec: dict,
                  source: str = "", command: str = "", overwrite: bool = False) -> dict:
    """Search plans for ``model`` on ``data`` until ``config.budget_s`` is spent; returns the result
    (also ``OUT/metrics.json``). ``data_spec`` ({name, subset, options}) lets other workers load the data."""
    out = Path(out).resolve()
    started = time.time()
    fingerprint = config.fingerprint() | {"source": source, "data": data_spec}
    state = _prepare(out, config, overwrite, fingerprint)
    if overwrite and config.storage:  # starting over means the shared study too
        _delete_study(config)
    deadline = started + config.budget_s - state.get("spent_s", 0.0)
    resume_hint = f"rerun `{command}` to resume" if command else "rerun the same command to resume"

    clock = _Clock(out / STATE, state, started)  # spent_s kept current: a run killed with -9 resumes with it
    try:
        return _phases(model, data, config, out, state, clock, deadline, resume_hint, device=device,
                       data_spec=data_spec, source=source, command=command)
    finally:
        clock.stop()


def _phases(model, data, config: AutoConfig, out: Path, state: dict, clock, deadline: float, resume_hint: str, *,
            device, data_spec: dict, source: str, command: str) -> dict:
    """The run's phases (see the module docstring); ``clock`` records the time used and the state."""
    spend = clock.spend
    if not (out / "input" / "model").is_dir():
        with torch.random.fork_rng(devices=[]):
            save(copy.deepcopy(model).cpu(), out / "input" / "model", overwrite=True)
    proxy = ProxyRun(model, data, device, images=config.proxy_images, batch=config.batch,
                     latency_seconds=config.latency_seconds, seed=config.seed)
    space = space_for(model, proxy.task.kind, proxy.task.example)
    if "baseline_proxy" not in state or "train_estimate_s" not in state:
        log(f"measuring the input model at the proxy fidelity (validation split, onnxruntime batch {config.batch})")
        t0 = time.perf_counter()
        base = proxy.baseline(out / "baseline")
        base.update(onnx="baseline/model.onnx", seconds=round(time.perf_counter() - t0, 1))
        estimate = round(_train_estimate(proxy, min(space_epochs(space)), config), 1)
        clock.record(baseline_proxy=base, train_estimate_s=estimate)  # both or neither, should a kill come
    base = state["baseline_proxy"]
    one_trial = 2 * base["seconds"] + state["train_estimate_s"]
    storage = {"kind": "rdb", "url": redact(config.storage), "study": config.study_name} if config.storage else \
        {"kind": "journal", "path": str(out / JOURNAL), "study": config.study_name}
    study = open_study(_spec(out, config, base, data_spec, device, deadline))
    _check_same_search(study, config, state["fingerprint"])
    recover_stale_trials(study)
    # a new study: the shipped recipes' shapes go first. (Two runs opening one new --storage study at the
    # same moment may both queue them; skip_if_exists narrows that, and a repeat costs one proxy trial.)
    if config.starting_plans and not study.get_trials(deepcopy=False):
        for name, plan in space.starting_plans().items():
            study.enqueue_trial(plan, user_attrs={"starting_plan": name}, skip_if_exists=True)
    done_before = sum(r["state"] == "complete" for r in trial_rows(study, config.target))
    # a search-only worker leaves the full runs to the run that picks the finalists: all its budget searches
    reserve = 0.0 if config.search_only else _reserve_seconds(config, state, data, len(proxy.data.train), space)
    search_deadline = max(time.time(), deadline - reserve)
    if search_deadline - time.time() < one_trial and not done_before:
        raise DeepslimError(f"--budget {format_seconds(config.budget_s)} is too small for one trial: a proxy trial of "
                            f"this model takes about {format_seconds(one_trial)} here, and the full runs of the best "
                            f"plans about {format_seconds(reserve)} more",
                            hint=f"give --budget {format_seconds(max(one_trial * 10 + reserve, 600))} or more")
    log(f"search: until {format_seconds(search_deadline - time.time())} from now "
        f"({format_seconds(reserve)} kept for {config.top_k} full run(s)); study in {storage.get('path') or storage['url']}")
    spec = _spec(out, config, base, data_spec, device, search_deadline)
    interrupted = False
    try:
        run_workers(spec, config.workers, config.ray, inputs=(model, data))
    except KeyboardInterrupt:
        interrupted = True
    spend()
    rows = trial_rows(open_study(spec), config.target)
    result = {"status": "interrupted" if interrupted else None, "target": str(config.target),
              "max_drop": config.max_drop, "batch": config.batch, "budget_s": config.budget_s, "source": source,
              "command": command, "storage": storage, "resume": resume_hint, "task": proxy.task.kind,
              "baseline_proxy": base, "trials": rows,
              "pareto": pareto_front(rows, not config.target.minimize()), "settings": dataclasses.asdict(config)
              | {"target": str(config.target), "storage": redact(config.storage)}}
    if interrupted:
        write_json_atomic(out / "metrics.json", result)
        raise Interrupted(f"interrupted: {sum(r['state'] == 'complete' for r in rows)} finished trial(s) are kept "
                          f"in {storage.get('path') or storage['url']}", hint=resume_hint)
    if config.search_only:
        result.update(status="searched", finalists=[], best=None, fallback=None, published=None)
        spend()
        result["spent_s"] = state["spent_s"]
        write_json_atomic(out / "metrics.json", result)
        clock.record(done=True)
        return result
    if "retimed" not in state:  # once: a resumed run picks from the same figures
        clock.record(retimed=retime_candidates(out, rows, proxy.latency_input, batch=config.batch,
                                               seconds=config.final_latency_seconds * 2,
                                               maximize_value=not config.target.minimize(), n=config.retime))
    apply_retimed(rows, state["retimed"], config.target.metric)
    result["pareto"] = pareto_front(rows, not config.target.minimize())
    retime_rows = RetimeLog(state.get("retime_sessions", []), lambda log: clock.record(retime_sessions=log),
                            lambda rows, session: retime_candidates(
                                out, rows, proxy.latency_input, batch=config.batch,
                                seconds=config.final_latency_seconds * 2, maximize_value=not config.target.minimize(),
                                n=len(rows), pick=False, session=session))
    picker = FinalistPicker(rows, config.target, config.max_drop, config.proxy_slack, retime=retime_rows,
                            extendable=lambda plan: any("finetune" in st for st in space.stages(plan, int(plan["epochs"]))))
    finalists = run_finalists(model, data, space, picker, out, config, device, deadline, state, proxy, spend,
                               resume_hint, result)
    best, fallback = choose(finalists, config.target, config.max_drop)
    result.update(status=status_of(best, fallback, config.target), finalists=finalists, best=best, fallback=fallback)
    spend()
    result["spent_s"] = state["spent_s"]
    publish_result(out, result, space, proxy, config)
    clock.record(done=True)
    return result


class _Clock:
    """The run's time account: ``spend()`` adds the time since the last call to ``state["spent_s"]`` and
    writes the state; a daemon thread calls it every ``every`` seconds until ``stop``."""

    def __init__(self, path: Path, state: dict, started: float, every: float = 15.0):
        import threading

        self.path, self.state, self.mark = path, state, started
        self._lock, self._stop = threading.Lock(), threading.Event()
        threading.Thread(target=self._tick, args=(every,), daemon=True).start()

    def spend(self) -> None:
        with self._lock:
            now = time.time()
            self.state["spent_s"] = round(self.state.get("spent_s", 0.0) + now - self.mark, 1)
            self.mark = now
            write_json_atomic(self.path, self.state)

    def record(self, **values) -> None:
        """Set state keys and write the state, under the lock the clock thread writes it with."""
        with self._lock:
            self.state.update(values)
        self.spend()

    def _tick(self, every: float) -> None:
        while not self._stop.wait(every):
            self.spend()

    def stop(self) -> None:
        self._stop.set()


def _delete_study(config: AutoConfig) -> None:
    import optuna

    from .study import open_storage

    try:
        optuna.delete_study(study_name=config.study_name, storage=open_storage(config.storage, Path(".")))
        log(f"--overwrite: deleted study '{config.study_name}' from {redact(config.storage)}")
    except KeyError:
        pass


def _check_same_search(study, config: AutoConfig, fingerprint: dict) -> None:
    """A study joined through --storage must be the same search (model, data, target, bound, proxy, sampler)."""
    recorded = study.user_attrs.get("fingerprint")
    if recorded is None:
        study.set_user_attr("fingerprint", fingerprint)
    elif recorded != fingerprint:
        diff = ", ".join(k for k, v in fingerprint.items() if recorded.get(k) != v)
        raise DeepslimError(f"study '{config.study_name}' in the storage was started with other settings ({diff})",
                            hint="use the same settings to join it, or another --study-name")


def _reserve_seconds(config: AutoConfig, state: dict, data, n_proxy: int, space) -> float:
    """Time kept back from the search for the finalists' full runs: ``top_k`` runs at the space's longest
    fine-tune, scaled from the timed proxy epoch (at most 60% of the budget)."""
    epochs = max(space_epochs(space))
    per_sample_epoch = state["train_estimate_s"] / max(1, n_proxy) / max(1, round(min(space_epochs(space))
                                                                                  * config.proxy_epoch_scale))
    full = per_sample_epoch * len(data.train) * epochs + 4 * state["baseline_proxy"]["seconds"]
    return min(0.6 * config.budget_s, config.top_k * full)


def _spec(out: Path, config: AutoConfig, base: dict, data_spec: dict, device, deadline: float) -> dict:
    return {"out": str(out), "storage": config.storage, "study_name": config.study_name, "sampler": config.sampler,
            "seed": config.seed, "target": {"metric": config.target.metric, "op": config.target.op,
                                            "value": config.target.value},
            "max_drop": config.max_drop, "proxy_slack": config.proxy_slack, "proxy_images": config.proxy_images,
            "proxy_epoch_scale": config.proxy_epoch_scale, "batch": config.batch, "trials": config.trials,
            "latency_seconds": config.latency_seconds, "baseline_proxy": base, "data": data_spec,
            "device": str(device), "search_deadline": deadline,
            # a search-only worker on another machine must not propose the main run's seeded plans again
            "seed_salt": _machine_salt() if config.search_only else 0}


def _machine_salt() -> int:
    import os
    import socket
    import zlib

    return zlib.crc32(f"{socket.gethostname()}:{os.getpid()}".encode()) % 1_000_003
