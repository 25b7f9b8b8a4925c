import pytest

from deepslim.profiling.latency import InterleavedTimes


def make_fake_compare(factors: dict[str, float]):
    """An ``interleave_latency`` stand-in: a model whose file path contains KEY takes FACTOR ms per call.

    Every round scales all models alike, so every ratio is exact and its spread a single value.
    For tests of what the pipeline does with a comparison (and to spare other tests its
    100 ms pauses per turn); the real comparison is covered by the end-to-end tests.
    """
    calls = []

    def compare(models, example, *, batch_sizes, runtimes, min_seconds, **_):
        calls.append([str(m) for m in models])
        per_model = [next((f for key, f in factors.items() if key in str(m)), 1.0) for m in models]
        return [InterleavedTimes(runtimes[0], bs, 1, [[f * bs * (1 + 0.1 * r) for r in range(6)] for f in per_model])
                for bs in batch_sizes]

    compare.calls = calls
    return compare


@pytest.fixture
def fake_compare():
    """``fake_compare({"02-slow": 3.0})``: see ``make_fake_compare``."""
    return make_fake_compare
