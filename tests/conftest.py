import os

import pytest
import torch

from deepslim.data.fashion_mnist import default_data_dir

torch.set_num_threads(1)  # tests run in parallel workers; one thread each avoids oversubscription


@pytest.fixture(scope="session")
def fashion_mnist_dir():
    root = default_data_dir()
    if not (root / "t10k-labels-idx1-ubyte.gz").is_file() and not (root / "t10k-labels-idx1-ubyte").is_file():
        pytest.skip(f"Fashion-MNIST not installed in {root} (make test installs it)")
    return root


@pytest.fixture
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from deepslim.cli import main

    def run(*args):
        os.environ.setdefault("COLUMNS", "200")
        capsys.readouterr()  # drop what earlier steps of the test printed
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def train_synthetic_run(out, model: str, epochs: int = 1):
    """Train ``model`` on the synthetic data set with the CLI into ``out``; returns ``out``."""
    from deepslim.cli import main

    assert main(["train", "--model", model, "--data", "synthetic", "--epochs", str(epochs), "--batch-size", "32",
                 "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def synthetic_run(tmp_path_factory):
    """A factory of trained runs on synthetic data, shared by the tests of one module."""
    return lambda model, epochs=1: train_synthetic_run(tmp_path_factory.mktemp("run") / model, model, epochs)
