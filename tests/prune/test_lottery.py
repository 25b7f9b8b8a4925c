import pytest

import deepslim
from deepslim.core import DeepslimError
from deepslim.prune import LotteryConfig, find_lottery_ticket
from deepslim.testing import tiny_data
from deepslim.train import TrainConfig


def test_rounds_follow_the_sparsity_schedule_with_controls():
    data = tiny_data(n_train=240)
    records = find_lottery_ticket(lambda: deepslim.create_model("lenet5"), data,
                                  TrainConfig(epochs=1, batch_size=32, lr=0.05),
                                  LotteryConfig(rounds=2, prune_per_round=0.5, rewind_step=2))
    assert [r["round"] for r in records] == [0, 1, 2]
    assert records[1]["sparsity"] == pytest.approx(0.5, abs=1e-3)
    assert records[2]["sparsity"] == pytest.approx(0.75, abs=1e-3)
    for r in records[1:]:
        assert {"ticket", "random_reinit", "random_prune"} <= set(r)
        assert all(0 <= r[k] <= 100 for k in ("ticket", "random_reinit", "random_prune"))


def test_rewinding_restores_the_early_weights(monkeypatch):
    """The ticket starts from the step-k weights (masked), not from the trained ones."""
    import deepslim.prune.lottery as lottery

    seen = []
    original = lottery._with_weights

    def spy(model_fn, state, masks):
        model = original(model_fn, state, masks)
        seen.append((state, masks, {k: v.clone() for k, v in model.state_dict().items()}))
        return model

    monkeypatch.setattr(lottery, "_with_weights", spy)
    data = tiny_data(n_train=120)
    find_lottery_ticket(lambda: deepslim.create_model("lenet5"), data, TrainConfig(epochs=1, batch_size=32),
                        LotteryConfig(rounds=1, rewind_step=1, controls=False))
    state, masks, start = seen[0]
    w, mask = start["3.weight"].cpu(), masks.masks["3"].cpu()  # wherever training put them
    assert (w[~mask] == 0).all()
    assert (w[mask] == state["3.weight"].cpu()[mask]).all()


def test_bad_config():
    with pytest.raises(DeepslimError, match="prune_per_round"):
        LotteryConfig(prune_per_round=1.0)


def test_lottery_cli(cli, tmp_path):
    import json

    args = ("lottery", "--model", "lenet5", "--data", "synthetic", "--rounds", "1", "--epochs", "1",
            "--batch-size", "32", "--out", tmp_path / "lt", "--quiet")
    code, out, _ = cli(*args)
    assert code == 0 and "ticket" in out
    data = json.loads((tmp_path / "lt" / "lottery.json").read_text())
    assert len(data["rounds"]) == 2 and (tmp_path / "lt" / "lottery.png").is_file()
    code, _, err = cli(*args)
    assert code == 2 and "--overwrite" in err
