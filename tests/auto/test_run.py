"""`deepslim auto` end to end on the tiny setting (conftest.py): the result contract, the statuses,
the budget check, resuming after kill -9, two worker processes on one study."""

import json
import os
import signal
import subprocess
import time

import optuna
import pytest

from deepslim.auto import auto_compress
from deepslim.auto.study import open_storage
from deepslim.cli.main import main
from deepslim.core import DeepslimError

CONTRACT = ("status", "best", "fallback", "pareto", "trials", "storage", "finalists", "published", "resume")


def test_result_contract_and_files(tiny, config_factory, tmp_path):
    model, data, spec = tiny
    result = auto_compress(model, data, config_factory(target="macs<=1e9", top_k=2), tmp_path / "out",
                           device=__import__("torch").device("cpu"), data_spec=spec)
    out = tmp_path / "out"
    assert result["status"] == "met"
    # every plan reaches 1e9 MACs: the first finalist, the fastest (or as fast and more accurate), kept the bound,
    # and no plan is clearly faster, so there is no second
    assert len(result["finalists"]) == 1 and "slack" in result["finalists"][0]["pick"]["rule"]
    for key in CONTRACT:
        assert key in result
    for name in ("model", "model.onnx", "recipe.yaml", "metrics.json", "report.html", "study.journal"):
        assert (out / name).exists(), name
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["status"] == "met" and len(saved["trials"]) == 3
    assert all(r["state"] == "complete" for r in saved["trials"])
    # a new study begins with the shipped recipe the model fits (fmnist-cnn has no block to drop)
    assert saved["trials"][0]["starting_plan"] == "recipes/prune-quantize.yaml"
    assert "the shape of recipes/prune-quantize.yaml" in saved["trials"][0]["description"]
    assert [r["starting_plan"] for r in saved["trials"][1:]] == [None, None]
    best = result["best"]
    assert best["measured"]["macs"] <= 1e9 and best["measured"]["drop"] <= 100
    assert result["published"]["trial"] == best["trial"] and result["published"]["fidelity"] == "full"
    assert result["published"]["folder"] == best["folder"] == f"finalists/trial-{best['trial']:04d}"
    # the published recipe is the winning plan at full fidelity, and reproduces it with `deepslim compress`
    assert "auto-trial-%d" % best["trial"] in (out / "recipe.yaml").read_text()
    assert "Pareto plot" in (out / "report.html").read_text()
    # the search never scores on the test split: the input's proxy accuracy is its validation accuracy
    from deepslim.train.evaluate import evaluate

    assert result["baseline_proxy"]["accuracy"] == evaluate(model, data.val, device="cpu")["accuracy"]
    assert all(r["accuracy"] is not None for r in result["trials"])
    with pytest.raises(DeepslimError, match="already holds a finished auto run"):
        auto_compress(model, data, config_factory(target="macs<=1e9", top_k=2), out, device=__import__("torch").device("cpu"),
                      data_spec=spec)


def test_impossible_target_returns_the_best_found_as_not_met(auto_cli, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(auto_cli("--target", "macs<=1", "--max-drop", "100", "--trials", "2", "--out", str(out)),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 3, run.stderr
    result = json.loads((out / "metrics.json").read_text())
    assert result["status"] == "not met"
    assert result["published"] is not None and (out / "model.onnx").is_file()
    assert "status: not met" in run.stdout


def test_budget_too_small_for_one_trial(tiny, config_factory, tmp_path):
    model, data, spec = tiny
    with pytest.raises(DeepslimError, match="too small for one trial"):
        auto_compress(model, data, config_factory(budget_s=1.0), tmp_path / "out",
                      device=__import__("torch").device("cpu"), data_spec=spec)


def test_starting_plans_are_on_unless_refused():
    from deepslim.cli.auto import _config
    from deepslim.cli.main import build_parser

    args = ["auto", "--model", "fmnist-cnn", "--target", "speedup>=2", "--out", "o"]
    assert _config(build_parser().parse_args(args)).starting_plans is True
    assert _config(build_parser().parse_args([*args, "--no-starting-plans"])).starting_plans is False


def test_bad_inputs_get_one_line(capsys, tmp_path, psycopg_works):
    assert main(["auto", "--model", "fmnist-cnn", "--target", "latency<=3", "--out", str(tmp_path / "a")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: --target: unknown metric 'latency'") and "speedup>=N" in err and "\n" not in err
    assert main(["auto", "--model", "fmnist-cnn", "--target", "speedup>=2", "--storage",
                 "postgresql://nobody@127.0.0.1:9/none", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    expected = ("error: cannot reach the study storage postgresql://nobody@127.0.0.1:9/none"
                if psycopg_works else  # a machine without deepslim[auto]'s driver
                "error: --storage postgresql://nobody@127.0.0.1:9/none: the database driver is missing (")
    assert err.startswith(expected) and "\n" not in err
    assert not (tmp_path / "b").exists()


def _complete_trials(out):
    storage = open_storage(None, out)
    try:
        study = optuna.load_study(study_name="deepslim-auto", storage=storage)
    except KeyError:
        return []
    return study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))


def test_resume_after_kill_9_redoes_no_finished_trial(auto_cli, tmp_path):
    out = tmp_path / "out"
    command = auto_cli("--target", "macs<=1e9", "--max-drop", "100", "--trials", "12", "--sampler", "random",
                       "--out", str(out))
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and len(_complete_trials(out) if (out / "study.journal").exists() else []) < 2:
        time.sleep(0.1)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = {t.number: (t.params, (out / "trials" / f"{t.number:04d}" / "proxy.json").stat().st_mtime_ns)
              for t in _complete_trials(out)}
    assert 2 <= len(before) < 12, "the run finished before it could be killed; make the trials longer"
    run = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    after = {t.number: t for t in _complete_trials(out)}
    assert len(after) == 12
    for number, (params, mtime) in before.items():
        assert after[number].params == params
        assert (out / "trials" / f"{number:04d}" / "proxy.json").stat().st_mtime_ns == mtime  # not redone
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["status"] == "met"
    # the starting plan ran once, first: the resumed run did not queue it again
    assert [r["trial"] for r in metrics["trials"] if r["starting_plan"]] == [0]


def test_two_worker_processes_share_one_study(auto_cli, tmp_path):
    out = tmp_path / "out"
    run = subprocess.run(auto_cli("--target", "macs<=1e9", "--max-drop", "100", "--trials", "4", "--workers", "2",
                                  "--out", str(out)), capture_output=True, text=True, timeout=400)
    assert run.returncode == 0, run.stderr
    trials = _complete_trials(out)
    assert len(trials) >= 4
    pids = {t.user_attrs["worker"]["pid"] for t in trials}
    assert len(pids) == 2 and os.getpid() not in pids


def test_ctrl_c_keeps_every_finished_trial(auto_cli, tmp_path):
    out = tmp_path / "out"
    command = auto_cli("--target", "macs<=1e9", "--max-drop", "100", "--trials", "60", "--sampler", "random",
                       "--out", str(out))
    # a pytest-xdist worker ignores SIGINT, and a child inherits that: give the command the default, as a shell would
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.time() + 240
    while time.time() < deadline and len(_complete_trials(out) if (out / "study.journal").exists() else []) < 2:
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    kept = _complete_trials(out)
    assert len(kept) >= 2
    assert "finished trial(s) are kept" in err and "to resume" in err
    assert json.loads((out / "metrics.json").read_text())["status"] == "interrupted"
