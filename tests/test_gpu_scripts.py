"""scripts/gpu_check.sh and scripts/gpu_wheels.sh parse, and their dry runs list the steps without running any."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def _dry(script: str, tmp_path) -> str:
    env = {**os.environ, "DRY_RUN": "1", "OUT": str(tmp_path / "out"), "DEST": str(tmp_path / "wheels"),
           "PY": sys.executable}
    done = subprocess.run(["bash", str(ROOT / "scripts" / script)], env=env, capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_scripts_parse():
    for script in ("gpu_check.sh", "gpu_wheels.sh"):
        assert subprocess.run(["bash", "-n", str(ROOT / "scripts" / script)]).returncode == 0


def test_gpu_check_dry_run_lists_every_step_within_ten_minutes(tmp_path):
    out = _dry("gpu_check.sh", tmp_path)
    steps = [line for line in out.splitlines() if line.startswith("+ [")]
    assert [s.split(",")[0][3:] for s in steps] == ["install", "suite", "train", "compress", "profile", "auto"]
    assert "pytest --device cuda" in out and "--epochs 2 --device cuda" in out
    assert "--recipe recipes/gpu-check.yaml" in out and all("--device cuda" in s for s in steps[1:])
    limits = [int(s.split("at most ")[1].split("s]")[0]) for s in steps]
    # the device tool's limit per call, less the version checks, with the install's --target fallback (20 s more)
    assert sum(limits) + 20 <= 10 * 60 - 20
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_gpu_wheels_dry_run_fetches_torch_pruning_and_the_data(tmp_path):
    out = _dry("gpu_wheels.sh", tmp_path)
    assert "torch-pruning==" in out and "--only-binary=:all:" in out and "-ubyte.gz" in out
    assert "optuna==" in out and "sqlalchemy==" in out  # `deepslim auto` searches on Optuna
    assert "minilm-tokenizer" in out and "model.safetensors" in out  # the tokenizer travels, the weights do not
    assert not (tmp_path / "wheels").exists()


def test_wheels_folder_is_ignored_by_git():
    assert "wheels/" in (ROOT / ".gitignore").read_text().split()
