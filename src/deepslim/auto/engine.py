"""The search loop of `deepslim auto`: Optuna asks for plans, proxy trials answer, workers share one study.

A worker is one process running ``search_worker(spec)``: it loads the input model (saved once in
``OUT/input/model``) and the data from the spec, joins the study and runs trials until the search
deadline or the trial cap. The driver runs one in-process, starts several as local processes
(``--workers N``), or as Ray tasks (``--ray``). Every worker measures latency on its own machine;
with several workers on one machine those figures collide, which is why the finalists are timed
again, in turns and alone, at the end (``finalists.py``).

Example:
    >>> search_worker(spec)              # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import optuna
import torch

from ..core import log
from ..export import load
from ..pipeline.recipe import parse_recipe
from .space import plan_key, recipe_text, space_for
from .study import TRIAL_CONSTRAINTS, constraint_of, make_sampler, open_storage, worker_id
from .target import Target
from .trial import PROXY_FILE, ProxyRun

optuna.logging.set_verbosity(optuna.logging.WARNING)


def proxy_epochs(plan: dict, scale: float) -> int:
    """A proxy trial's fine-tune epochs: the plan's, scaled down (at least one)."""
    return max(1, round(int(plan["epochs"]) * scale))


def directions(target: Target) -> list[str]:
    """Objectives: proxy accuracy up; the target's metric down (a cost) or up (a speed-up)."""
    return ["maximize", "minimize" if target.minimize() else "maximize"]


def open_study(spec: dict, seed_offset: int = 0) -> optuna.Study:
    storage = open_storage(spec["storage"], Path(spec["out"]))
    sampler = make_sampler(spec["sampler"], spec["seed"] + seed_offset + spec.get("seed_salt", 0), constraint_of)
    return optuna.create_study(storage=storage, study_name=spec["study_name"], sampler=sampler,
                               directions=directions(Target(**spec["target"])), load_if_exists=True)


def _same_plan_done(study: optuna.Study, plan: dict):
    for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        if plan_key(t.params) == plan_key(plan) and "proxy" in t.user_attrs:
            return t
    return None


class Objective:
    """Optuna's objective: one proxy trial per call, its figures stored on the trial (user attrs)."""

    def __init__(self, spec: dict, proxy: ProxyRun, space, study: optuna.Study):
        self.spec, self.proxy, self.space, self.study = spec, proxy, space, study
        self.target = Target(**spec["target"])
        self.base = spec["baseline_proxy"]
        self.out = Path(spec["out"])

    def __call__(self, trial: optuna.Trial):
        trial.set_user_attr("worker", worker_id())
        plan = self.space.suggest(trial)
        description = self.space.describe(plan)
        if "starting_plan" in trial.user_attrs:
            description += f" (the shape of {trial.user_attrs['starting_plan']})"
        earlier = _same_plan_done(self.study, plan)
        if earlier is not None:  # the sampler proposed a plan already measured: reuse, don't re-run
            figures = dict(earlier.user_attrs["proxy"])
            trial.set_user_attr("repeat_of", earlier.number)
        else:
            text = recipe_text(self.space, plan, epochs=proxy_epochs(plan, self.spec["proxy_epoch_scale"]),
                               max_batch=len(self.proxy.data.train), name=f"auto-trial-{trial.number}")
            folder = self.out / "trials" / f"{trial.number:04d}"
            log(f"trial {trial.number}: {description}")
            started = time.perf_counter()
            figures = self.proxy.run(parse_recipe(text, origin=f"trial {trial.number}"), folder,
                                     self.out / self.base["onnx"])
            figures["seconds"] = round(time.perf_counter() - started, 1)
            (folder / PROXY_FILE).write_text(json.dumps({"plan": plan, "figures": figures}, indent=1))
        drop = self.base["accuracy"] - figures["accuracy"]
        figures["drop"] = drop
        trial.set_user_attr("proxy", figures)
        trial.set_user_attr("description", description)
        excess = drop - (self.spec["max_drop"] + self.spec["proxy_slack"])
        trial.set_user_attr("constraint", excess)
        if TRIAL_CONSTRAINTS:
            trial.set_constraint("accuracy_drop", excess)
        log(f"trial {trial.number}: {figures['accuracy']:.2f} ({-drop:+.2f}) on validation, "
            f"{figures['speedup']:.2f}x ({figures['ort_latency_ms']:.3f} ms), {figures['macs'] / 1e6:.2f}M MACs")
        return figures["accuracy"], figures[self.target.metric]


def load_worker_inputs(spec: dict):
    """The input model and data, as every worker rebuilds them (from OUT/input/model and the data spec)."""
    from ..data import load_dataset

    model = load(Path(spec["out"]) / "input" / "model")
    data = load_dataset(spec["data"]["name"], subset=spec["data"].get("subset"), **spec["data"].get("options", {}))
    return model, data


def search_worker(spec: dict, seed_offset: int = 0, inputs=None) -> int:
    """Run trials until the deadline or the cap; returns how many this worker finished."""
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    model, data = inputs if inputs is not None else load_worker_inputs(spec)
    device = torch.device(spec.get("device", "cpu"))
    study = open_study(spec, seed_offset)
    proxy = ProxyRun(model, data, device, images=spec["proxy_images"], batch=spec["batch"],
                     latency_seconds=spec["latency_seconds"], seed=spec["seed"])
    space = space_for(model, proxy.task.kind, proxy.task.example)
    objective = Objective(spec, proxy, space, study)
    before = _complete(study)
    callbacks = []
    if spec.get("trials"):
        callbacks.append(optuna.study.MaxTrialsCallback(spec["trials"], states=(optuna.trial.TrialState.COMPLETE,)))
    remaining = spec["search_deadline"] - time.time()
    if spec.get("trials") and before >= spec["trials"]:
        return 0
    if remaining <= 0:
        return 0
    # a plan that fails (a DeepslimError, an export or runtime error) is recorded as a failed trial; the search goes on
    with _InterruptWatch() as watch:
        study.optimize(objective, timeout=remaining, callbacks=[*callbacks, watch], catch=(Exception,))
    return _complete(study) - before


class _InterruptWatch:
    """Ctrl-C ends the search even when it lands in code that wraps exceptions (an ONNX export turns a
    KeyboardInterrupt into its own error, which the search would record as a failed trial and go on):
    the SIGINT handler notes it, and this callback raises it again after that trial."""

    def __init__(self):
        self.hit, self._previous = False, None

    def __enter__(self):
        import signal
        import threading

        previous = signal.getsignal(signal.SIGINT)
        # only where Ctrl-C raises at all (not in a thread, not where SIGINT is ignored, e.g. a background job)
        if threading.current_thread() is threading.main_thread() and callable(previous):
            self._previous = previous

            def handler(signum, frame):
                self.hit = True
                previous(signum, frame)

            signal.signal(signal.SIGINT, handler)
        return self

    def __exit__(self, *exc):
        import signal

        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False

    def __call__(self, study, trial) -> None:
        if self.hit:
            raise KeyboardInterrupt


def _complete(study) -> int:
    return len(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)))


def _process_worker(spec: dict, offset: int, parent: int) -> None:  # pragma: no cover - runs in a child process
    from ..core.progress import set_quiet

    set_quiet(True)
    _end_with_parent(parent)
    search_worker(spec, offset)


def _end_with_parent(parent: int) -> None:
    """A worker whose driver was killed (-9) ends too: its trial then counts as stale on resume."""
    import os
    import threading

    def watch():
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def run_workers(spec: dict, workers: int, ray_address: str | None, inputs=None) -> None:
    """The search phase: in-process (one worker), local processes, or Ray tasks; waits for all."""
    if ray_address is not None:
        from .ray_workers import run_on_ray

        run_on_ray(spec, workers, ray_address)
        return
    if workers <= 1:
        search_worker(spec, 0, inputs)
        return
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    import os

    procs = [ctx.Process(target=_process_worker, args=(dict(spec, threads=1), i, os.getpid()), daemon=False)
             for i in range(workers)]
    log(f"search: {workers} worker processes on one study")
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except KeyboardInterrupt:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()
        raise
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        log(f"note: {len(failed)} worker process(es) ended with an error (exit {failed}); their finished trials are kept")
