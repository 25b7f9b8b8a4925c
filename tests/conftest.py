import os

import pytest
import torch

from deepslim.data.fashion_mnist import default_data_dir

torch.set_num_threads(1)  # tests run in parallel workers; one thread each avoids oversubscription


# --- the device the suite runs on -------------------------------------------------------------
# `pytest --device cuda` (or DEEPSLIM_TEST_DEVICE=cuda) runs the tests that take the `device` fixture
# with their models on that device, and skips the tests marked `cpu_only` (ONNX Runtime numerics,
# CPU latency, ...), naming why. The default is cpu: then nothing differs from a plain `pytest`.
def pytest_addoption(parser):
    parser.addoption("--device", default=os.environ.get("DEEPSLIM_TEST_DEVICE", "cpu"),
                     help="torch device for tests that take the `device` fixture: cpu (default), cuda, cuda:N; "
                          "or set DEEPSLIM_TEST_DEVICE")


def pytest_configure(config):
    config.addinivalue_line("markers", "cpu_only(reason): CPU-only by nature; skipped under --device cuda")
    name = config.getoption("--device")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise pytest.UsageError(f"--device {name}: not a torch device (use cpu, cuda or cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        # refuse at once rather than skip everything: a green run must mean the GPU was exercised
        raise pytest.UsageError(f"--device {name}: no CUDA GPU is available here (use --device cpu)")
    config.deepslim_device = device


def pytest_collection_modifyitems(config, items):
    if config.deepslim_device.type == "cpu":
        return
    for item in items:
        marker = item.get_closest_marker("cpu_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "CPU-only")
            item.add_marker(pytest.mark.skip(reason=f"cpu_only: {reason}"))


@pytest.fixture(scope="session")
def device(pytestconfig) -> torch.device:
    """The device the suite runs on (``--device``; CPU by default). Example::

        def test_prune_on_device(device):
            model = deepslim.create_model("lenet5").to(device)
    """
    return pytestconfig.deepslim_device


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


@pytest.fixture
def interrupt_after_checkpoint(monkeypatch):
    """``interrupt_after_checkpoint(module)``: the next checkpoint ``module`` saves is written, then
    KeyboardInterrupt is raised, as if the run were killed right after it; returns a callable that undoes it."""
    def patch(module):
        real = module.save_checkpoint

        def save_then_stop(path, state):
            real(path, state)
            raise KeyboardInterrupt

        monkeypatch.setattr(module, "save_checkpoint", save_then_stop)
        return lambda: monkeypatch.setattr(module, "save_checkpoint", real)
    return patch
