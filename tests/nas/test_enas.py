import json

import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.nas import (
    EnasConfig,
    EnasMacroSpace,
    EnasSupernet,
    RLConfig,
    enas_search,
    extract_child,
    get_space,
    rl_search,
    space_from_dict,
)
from deepslim.testing import tiny_data

TINY = {"channels": 8, "num_layers": 3, "reduce_after": (0,)}


@pytest.fixture(scope="module")
def data():
    return tiny_data(n_train=96)


def config(**kw) -> EnasConfig:
    base = dict(epochs=2, batch_size=32, controller_steps=3, reward_batch=16, evaluations=10, augment=False)
    return EnasConfig(**{**base, **kw})


def test_space_round_trips_and_refuses_foreign_archs():
    space = get_space("enas-macro")
    assert space_from_dict(json.loads(json.dumps(space.to_dict()))) == space
    arch = space.sample(1)
    assert space.validate(space.mutate(arch, 2, probability=0.5)) is not None
    assert space.validate(space.crossover(arch, space.sample(2), 3)) is not None
    assert space.encode(arch).shape == (space.encoding_size,)
    indices = [0] * len(space.decisions())
    assert space.from_decisions(indices)[0].ops == ("conv3",) * space.num_layers
    with pytest.raises(DeepslimError, match="ops\\[1\\] = 'conv7' is not allowed"):
        space.validate({"ops": ["conv3", "conv7"] + ["max3"] * 4, "skips": [[], [0], [0, 0], [0] * 3, [0] * 4, [0] * 5]})
    with pytest.raises(DeepslimError, match="skips\\[2\\]"):
        space.validate({"ops": ["conv3"] * 6, "skips": [[], [0], [0], [0] * 3, [0] * 4, [0] * 5]})
    with pytest.raises(DeepslimError, match="ENAS arch"):
        space.validate({"depths": [2]})
    with pytest.raises(DeepslimError, match="reduce_after"):
        EnasMacroSpace(num_layers=3, reduce_after=(2,))


def test_child_is_a_standalone_model(tmp_path):
    net = EnasSupernet(**TINY).eval()
    arch = net.space.validate({"ops": ["sep5", "avg3", "conv5"], "skips": [[], [1], [1, 1]]})
    child = extract_child(net, arch).eval()
    x = torch.randn(3, 1, 28, 28)
    assert torch.allclose(child(x), net(x, arch), atol=1e-5)
    assert sum(p.numel() for p in child.parameters()) < sum(p.numel() for p in net.parameters())
    deepslim.save(child, tmp_path / "child")
    again = deepslim.load(tmp_path / "child").eval()
    assert torch.allclose(again(x), child(x), atol=1e-6)
    info = deepslim.export_onnx(child, tmp_path / "child.onnx", x[:1])
    assert info["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("strategy", ["rl", "random", "evolution"])
def test_each_strategy_spends_exactly_the_budget(data, strategy):
    torch.manual_seed(0)
    net = EnasSupernet(**TINY)
    result = enas_search(net, data.train, data.val, config(strategy=strategy))
    assert result.evaluations == 10 and result.strategy == strategy
    net.space.validate(result.best["arch"])
    assert len(result.history) == 2 and all(h["loss"] > 0 for h in result.history)
    assert len(result.controller) == (6 if strategy == "rl" else 0)
    assert len(result.candidates) == (4 if strategy == "rl" else 10)


def _twins():
    """Two tiny supernets with the same initial weights: one runs whole, one is interrupted and resumed."""
    torch.manual_seed(0)
    init = EnasSupernet(**TINY).state_dict()
    whole, parted = EnasSupernet(**TINY), EnasSupernet(**TINY)
    whole.load_state_dict(init)
    parted.load_state_dict(init)
    return whole, parted


def test_interrupted_search_resumes_exactly(data, tmp_path, interrupt_after_checkpoint):
    import deepslim.nas.enas as enas

    whole, parted = _twins()
    expected = enas_search(whole, data.train, data.val, config())
    undo = interrupt_after_checkpoint(enas)
    with pytest.raises(KeyboardInterrupt):
        enas_search(parted, data.train, data.val, config(), checkpoint=tmp_path / "c.pt")
    undo()
    assert torch.load(tmp_path / "c.pt", weights_only=True)["epoch"] == 1
    resumed = enas_search(parted, data.train, data.val, config(), checkpoint=tmp_path / "c.pt", resume=True)
    assert resumed.best == expected.best and resumed.candidates == expected.candidates
    assert resumed.controller == expected.controller and resumed.evaluations == expected.evaluations
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in expected.history]
    assert all(torch.equal(a, b) for a, b in zip(parted.state_dict().values(), whole.state_dict().values()))


def test_refusals(data, tmp_path):
    with pytest.raises(DeepslimError, match="too small"):
        EnasConfig(epochs=2, controller_steps=5, evaluations=10)
    with pytest.raises(DeepslimError, match="'rl', 'random', 'evolution'"):
        EnasConfig(strategy="darts")
    torch.manual_seed(0)
    enas_search(EnasSupernet(**TINY), data.train, data.val, config(epochs=1), checkpoint=tmp_path / "c.pt")
    other = EnasSupernet(channels=8, num_layers=4, reduce_after=(0,))
    with pytest.raises(DeepslimError, match="another search space"):
        enas_search(other, data.train, data.val, config(epochs=1), checkpoint=tmp_path / "c.pt", resume=True)


def test_rl_strategy_runs_on_the_enas_space():
    space = get_space("enas-macro")
    judge = lambda a: {"accuracy": 100.0 * sum(op == "sep3" for op in a.ops) / len(a.ops)}  # noqa: E731
    result = rl_search(space, judge, budget=40, config=RLConfig(lr=0.05, samples_per_update=4), seed=0)
    rows = result.extras["controller"]
    assert sum(r["accuracy"] for r in rows[-10:]) / 10 > 100 / 6 + 20


def test_a_run_interrupted_after_its_last_epoch_derives_the_same_arch(data, tmp_path, interrupt_after_checkpoint):
    import deepslim.nas.enas as enas

    whole, parted = _twins()
    expected = enas_search(whole, data.train, data.val, config(epochs=1))
    undo = interrupt_after_checkpoint(enas)
    with pytest.raises(KeyboardInterrupt):
        enas_search(parted, data.train, data.val, config(epochs=1), checkpoint=tmp_path / "c.pt")
    undo()
    torch.manual_seed(12345)  # whatever the global stream holds now, the derive step does not depend on it
    resumed = enas_search(parted, data.train, data.val, config(epochs=1), checkpoint=tmp_path / "c.pt", resume=True)
    assert resumed.candidates == expected.candidates and resumed.best == expected.best
    assert resumed.seconds >= round(resumed.history[0]["seconds"], 1)  # the time before the interruption counts


@pytest.mark.parametrize("strategy", ["rl", "random", "evolution"])
def test_a_macs_limit_penalises_the_reward_and_bounds_the_derived_arch(data, strategy):
    from deepslim.nas.enas_cost import ChildCosts

    space = EnasSupernet(**TINY).space
    costs = ChildCosts(space, (1, 28, 28))
    limit = sorted(costs(space.sample(i))["macs"] for i in range(40))[20]  # about half the archs exceed it
    torch.manual_seed(0)
    cfg = config(strategy=strategy, max_macs=limit, evaluations=16)
    result = enas_search(EnasSupernet(**TINY), data.train, data.val, cfg)
    for c in result.candidates:
        assert c["macs"] == costs(c["arch"])["macs"]
        assert c["violation"] == pytest.approx(max(0.0, c["macs"] / limit - 1))
    assert any(c["violation"] > 0 for c in result.candidates + result.controller)  # the limit bites
    assert result.best["violation"] == 0.0 and result.best["macs"] <= limit
    feasible = [c["accuracy"] for c in result.candidates if c["violation"] == 0]
    assert result.best["reward_accuracy"] == max(feasible)
    rl = cfg.controller
    for row in result.controller:  # the controller learns from accuracy less the penalty, plus the entropy bonus
        expected = row["accuracy"] / 100 - rl.penalty_weight * row["violation"] + rl.entropy_weight * row["entropy"]
        assert row["reward"] == pytest.approx(expected)


def test_unset_limits_leave_the_config_identity_as_before():
    assert "max_macs" not in EnasConfig().to_dict()
    assert EnasConfig(max_params=5e4).to_dict()["max_params"] == 5e4
    with pytest.raises(DeepslimError, match="max_macs"):
        EnasConfig(max_macs=0)
