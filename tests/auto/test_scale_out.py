"""Scale-out of `deepslim auto`: a local Ray cluster runs the same seeded search as the in-process run,
and a study shared in PostgreSQL (started by scripts/ensure_postgres.sh; `make test` passes its URL in
DEEPSLIM_TEST_POSTGRES) takes trials from two workers, with a dead worker's trial failed by heartbeat."""

import os
import uuid

import optuna
import pytest
import torch

from deepslim.auto import auto_compress
from deepslim.auto.study import open_storage


def _best(result):
    return result["best"]["trial"], result["best"]["plan"]


def test_ray_local_cluster_finds_the_same_best_plan_as_in_process(tiny, config_factory, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    model, data, spec = tiny
    local = auto_compress(model, data, config_factory(target="macs<=1e9", sampler="tpe"), tmp_path / "in-process",
                          device=torch.device("cpu"), data_spec=spec)
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False)
    try:
        on_ray = auto_compress(model, data, config_factory(target="macs<=1e9", sampler="tpe", ray="local"),
                               tmp_path / "ray", device=torch.device("cpu"), data_spec=spec)
    finally:
        ray.shutdown()
    assert [r["plan"] for r in on_ray["trials"]] == [r["plan"] for r in local["trials"]]
    assert _best(on_ray) == _best(local)
    # the trials really ran in Ray's worker processes, not in this one
    assert {r["worker"]["pid"] for r in on_ray["trials"]} != {os.getpid()}
    assert all(r["worker"]["pid"] != os.getpid() for r in on_ray["trials"])


POSTGRES = os.environ.get("DEEPSLIM_TEST_POSTGRES")


@pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL: `make test` starts one (scripts/ensure_postgres.sh) and "
                                         "passes its URL in DEEPSLIM_TEST_POSTGRES")
def test_postgres_study_shared_by_two_workers(tiny, config_factory, tmp_path):
    model, data, spec = tiny
    name = f"test-{uuid.uuid4().hex[:8]}"
    result = auto_compress(model, data, config_factory(storage=POSTGRES, study_name=name, workers=2, trials=4),
                           tmp_path / "out", device=torch.device("cpu"), data_spec=spec)
    assert result["storage"]["kind"] == "rdb" and result["status"] == "met"
    study = optuna.load_study(study_name=name, storage=open_storage(POSTGRES, tmp_path))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) >= 4
    assert len({t.user_attrs["worker"]["pid"] for t in complete}) == 2


@pytest.mark.skipif(not POSTGRES, reason="no PostgreSQL (see above)")
def test_postgres_heartbeat_fails_a_dead_workers_trial(tmp_path):
    storage = open_storage(POSTGRES, tmp_path)
    storage.heartbeat_interval, storage.grace_period = 1, 1
    study = optuna.create_study(study_name=f"hb-{uuid.uuid4().hex[:8]}", storage=storage)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    storage.record_heartbeat(trial._trial_id)  # the worker beat once, then died
    import time

    time.sleep(2.5)
    optuna.storages.fail_stale_trials(study)
    states = [t.state for t in study.get_trials()]
    assert optuna.trial.TrialState.FAIL in states
    # the retry callback queued the plan again for another worker (the retry names the failed trial)
    retries = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.WAITING]
    assert len(retries) == 1 and retries[0].params == trial.params
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", optuna.storages.RetryFailedTrialCallback)
    assert retry.retried_trial_number(retries[0]) == trial.number


def test_unreachable_storage_is_one_clear_error(tmp_path, psycopg_works):
    from deepslim.core import DeepslimError

    # with the driver the server is tried and not found; without it the missing driver is named
    expected = ("cannot reach the study storage postgresql://u:\\*\\*\\*@127.0.0.1:9/db" if psycopg_works else
                "--storage postgresql://u:\\*\\*\\*@127.0.0.1:9/db: the database driver is missing \\(")
    with pytest.raises(DeepslimError, match=expected):
        open_storage("postgresql://u:secret@127.0.0.1:9/db", tmp_path)
    with pytest.raises(DeepslimError, match="not a database URL"):
        open_storage("localhost:5432", tmp_path)


def test_a_missing_database_driver_is_named(tmp_path, monkeypatch):
    import sys

    from deepslim.core import DeepslimError

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as on a machine without deepslim[auto]'s driver
    with pytest.raises(DeepslimError, match=r"the database driver is missing \(psycopg\)") as caught:
        open_storage("postgresql://u:secret@127.0.0.1:9/db", tmp_path)
    assert "secret" not in str(caught.value) and "deepslim[auto]" in caught.value.hint


def test_a_search_only_worker_adds_trials_that_the_main_run_finishes(tiny, config_factory, tmp_path):
    model, data, spec = tiny
    url = f"sqlite:///{tmp_path / 'study.db'}"  # any database URL Optuna's RDB storage takes; PostgreSQL between machines
    helper = auto_compress(model, data, config_factory(storage=url, trials=2, search_only=True), tmp_path / "helper",
                           device=torch.device("cpu"), data_spec=spec)
    assert helper["status"] == "searched" and not helper["finalists"] and helper["published"] is None
    assert not (tmp_path / "helper" / "model").exists() and (tmp_path / "helper" / "metrics.json").is_file()
    assert sum(r["state"] == "complete" for r in helper["trials"]) == 2
    main = auto_compress(model, data, config_factory(storage=url, trials=3), tmp_path / "main",
                         device=torch.device("cpu"), data_spec=spec)
    assert main["status"] == "met" and (tmp_path / "main" / "model").is_dir()
    assert sum(r["state"] == "complete" for r in main["trials"]) == 3
    # the helper's two trials (0 and 1) were not run again here; trial 2 was (unless it drew one of their plans)
    assert {p.name for p in (tmp_path / "main" / "trials").glob("*")} <= {"0002"}


def test_search_only_needs_a_shared_storage(auto_cli, tmp_path):
    import subprocess

    done = subprocess.run(auto_cli("--target", "macs<=1e9", "--search-only", "--out", str(tmp_path / "o")),
                          capture_output=True, text=True)
    assert done.returncode == 2 and "--search-only adds trials to a study shared with another run" in done.stderr
