import pytest
import torch

import deepslim
from deepslim.core import DeepslimError
from deepslim.testing import tiny_data, toy_mlp
from deepslim.train import Callback, TrainConfig, Trainer, evaluate


def test_training_learns_the_synthetic_task(device):
    data = tiny_data()
    model = deepslim.create_model("lenet5")
    before = evaluate(model, data.test, device=device)["accuracy"]
    cfg = TrainConfig(epochs=3, batch_size=32, optimizer="adamw", lr=3e-3, augment=False)
    history = Trainer(model, cfg, device=device).fit(data.train, val_data=data.val)
    after = evaluate(model, data.test, device=device)
    assert len(history) == 3 and "val_accuracy" in history[-1]
    assert after["n"] == len(data.test)
    assert after["accuracy"] > max(50.0, before + 30)


def test_callbacks_see_every_hook_and_extra_loss_is_added():
    calls = []

    class Recorder(Callback):
        def on_train_begin(self, trainer): calls.append("train_begin")
        def on_epoch_begin(self, trainer, epoch): calls.append("epoch_begin")
        def on_step_begin(self, trainer, step): calls.append("step_begin")
        def extra_loss(self, trainer, inputs, outputs, targets):
            calls.append("extra_loss")
            return 1000.0 * sum(p.pow(2).sum() for p in trainer.model.parameters())
        def after_backward(self, trainer): calls.append("after_backward")
        def after_step(self, trainer): calls.append("after_step")
        def on_step_end(self, trainer, step, loss): calls.append(("loss", loss))
        def on_epoch_end(self, trainer, epoch, metrics): calls.append("epoch_end")
        def on_train_end(self, trainer): calls.append("train_end")

    data = tiny_data(n_train=64)
    Trainer(toy_mlp(), TrainConfig(epochs=1, batch_size=32, lr=1e-4, augment=False), callbacks=[Recorder()]).fit(data.train)
    names = [c for c in calls if isinstance(c, str)]
    assert names[0] == "train_begin" and names[-1] == "train_end"
    assert names.count("step_begin") == names.count("after_step") == names.count("extra_loss") == 1
    losses = [c[1] for c in calls if isinstance(c, tuple)]
    assert losses[0] > 100  # the penalty is part of the loss


def test_resume_continues_exactly_where_it_stopped(tmp_path, device):
    data = tiny_data(n_train=120)
    cfg = TrainConfig(epochs=2, batch_size=32, lr=0.05)

    torch.manual_seed(1)
    straight = deepslim.create_model("fmnist-cnn")  # has dropout: RNG state (CUDA's too) must be restored
    Trainer(straight, cfg, device=device).fit(data.train)

    class StopAfterFirstEpoch(Callback):
        def on_epoch_end(self, trainer, epoch, metrics):
            trainer.stop_training = True

    torch.manual_seed(1)
    interrupted = deepslim.create_model("fmnist-cnn")
    ckpt = tmp_path / "last.pt"
    Trainer(interrupted, cfg, callbacks=[StopAfterFirstEpoch()], device=device).fit(data.train, checkpoint_path=ckpt)
    resumed = deepslim.create_model("fmnist-cnn")
    history = Trainer(resumed, cfg, device=device).fit(data.train, checkpoint_path=ckpt, resume=True)
    assert [h["epoch"] for h in history] == [1, 2]
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name


def test_resume_refuses_changed_options(tmp_path):
    data = tiny_data(n_train=64)
    ckpt = tmp_path / "last.pt"
    Trainer(toy_mlp(), TrainConfig(epochs=1, batch_size=32)).fit(data.train, checkpoint_path=ckpt)
    with pytest.raises(DeepslimError, match="options changed"):
        Trainer(toy_mlp(), TrainConfig(epochs=1, batch_size=16)).fit(data.train, checkpoint_path=ckpt, resume=True)
    ckpt.write_bytes(ckpt.read_bytes()[:100])
    with pytest.raises(DeepslimError, match="corrupt or truncated"):
        Trainer(toy_mlp(), TrainConfig(epochs=1, batch_size=32)).fit(data.train, checkpoint_path=ckpt, resume=True)


def test_wrong_input_shape_and_divergence_are_clear_errors():
    data = tiny_data(n_train=64)
    with pytest.raises(DeepslimError, match="does not accept inputs of shape"):
        Trainer(toy_mlp(in_features=100), TrainConfig(epochs=1)).fit(data.train)
    with pytest.raises(DeepslimError, match="fewer than one batch"):
        Trainer(toy_mlp(), TrainConfig(epochs=1, batch_size=4096)).fit(data.train)
    with pytest.raises(DeepslimError, match="lower the learning rate"):
        Trainer(toy_mlp(), TrainConfig(epochs=3, batch_size=32, lr=1e30, augment=False)).fit(data.train)


def test_adamw_and_onecycle_train():
    data = tiny_data()
    model = toy_mlp()
    Trainer(model, TrainConfig(epochs=3, batch_size=32, optimizer="adamw", lr=3e-3, schedule="onecycle",
                               weight_decay=0.01, label_smoothing=0.1)).fit(data.train)
    assert evaluate(model, data.test)["accuracy"] > 80
