import socket

import optuna

from deepslim.auto.study import open_storage, recover_stale_trials


def _study(tmp_path):
    return optuna.create_study(study_name="s", storage=open_storage(None, tmp_path), directions=["maximize", "minimize"])


def test_a_killed_processes_trial_is_failed_and_its_plan_queued_again(tmp_path):
    study = _study(tmp_path)
    dist = {"ratio": optuna.distributions.FloatDistribution(0.3, 0.75, step=0.05)}
    dead = study.ask(dist)
    dead.set_user_attr("worker", {"host": socket.gethostname(), "pid": 2 ** 22 + 12345})  # no such process
    live = study.ask(dist)
    live.set_user_attr("worker", {"host": socket.gethostname(), "pid": __import__("os").getpid()})
    elsewhere = study.ask(dist)
    elsewhere.set_user_attr("worker", {"host": "another-machine", "pid": 1})
    assert recover_stale_trials(study) == 1
    states = {t.number: t.state for t in study.get_trials()}
    assert states[dead.number] == optuna.trial.TrialState.FAIL
    assert states[live.number] == states[elsewhere.number] == optuna.trial.TrialState.RUNNING
    queued = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.WAITING]
    assert len(queued) == 1 and queued[0].system_attrs["fixed_params"] == dead.params
    # the journal in OUT is the study: a new process sees the same trials
    again = optuna.load_study(study_name="s", storage=open_storage(None, tmp_path))
    assert len(again.get_trials()) == len(study.get_trials())
