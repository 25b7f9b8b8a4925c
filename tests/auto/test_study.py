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


def test_a_killed_starting_plan_is_queued_again_with_its_label_and_values(tmp_path):
    study = _study(tmp_path)
    study.enqueue_trial({"ratio": 0.375}, user_attrs={"starting_plan": "recipes/drop-prune-quantize.yaml"})
    popped = study.ask()  # killed before its objective suggested anything: no params yet
    popped.set_user_attr("worker", {"host": socket.gethostname(), "pid": 2 ** 22 + 12345})
    assert recover_stale_trials(study) == 1
    queued = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.WAITING]
    assert len(queued) == 1 and queued[0].system_attrs["fixed_params"] == {"ratio": 0.375}
    assert queued[0].user_attrs["starting_plan"] == "recipes/drop-prune-quantize.yaml"


def test_queued_trials_not_yet_run_are_not_rows(tmp_path):
    from deepslim.auto import parse_target
    from deepslim.auto.result import trial_rows

    study = _study(tmp_path)
    study.enqueue_trial({"ratio": 0.5}, user_attrs={"starting_plan": "recipes/prune-quantize.yaml"})
    done = study.ask({"ratio": optuna.distributions.FloatDistribution(0.3, 0.75, step=0.025)})
    study.tell(done, [90.0, 2.0])
    rows = trial_rows(study, parse_target("speedup>=2"))
    assert [r["trial"] for r in rows] == [done.number] and rows[0]["plan"] == {"ratio": 0.5}
