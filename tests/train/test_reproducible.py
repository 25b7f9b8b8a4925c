"""Training is reproducible: deterministic algorithms inside ``fit``, restored after, and no change in numerics."""

import copy

import pytest
import torch

import deepslim
from deepslim.core import seed_everything
from deepslim.core.seed import deterministic_algorithms
from deepslim.distill import KD, Distillation
from deepslim.testing import tiny_data
from deepslim.train import Callback, TrainConfig, Trainer

CFG = TrainConfig(epochs=1, batch_size=32, lr=0.05)


class SeesDeterminism(Callback):
    def on_train_begin(self, trainer):
        self.seen = torch.are_deterministic_algorithms_enabled()


def test_fit_uses_deterministic_algorithms_and_restores_the_setting():
    assert not torch.are_deterministic_algorithms_enabled()
    probe = SeesDeterminism()
    Trainer(deepslim.create_model("lenet5"), CFG, callbacks=[probe]).fit(tiny_data(n_train=64).train)
    assert probe.seen is True
    assert not torch.are_deterministic_algorithms_enabled()
    assert not torch.backends.cudnn.deterministic  # the process default is back


def test_a_callers_strict_mode_is_kept():
    torch.use_deterministic_algorithms(True)  # strict: fail on an op without a deterministic version
    try:
        with deterministic_algorithms():
            assert not torch.is_deterministic_algorithms_warn_only_enabled()
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_an_interrupt_restores_the_setting_and_counts_the_saved_epochs(tmp_path):
    class CtrlCInSecondEpoch(Callback):
        def on_step_begin(self, trainer, step):
            if trainer.epoch == 1:
                raise KeyboardInterrupt

    trainer = Trainer(deepslim.create_model("lenet5"), TrainConfig(epochs=3, batch_size=32),
                      callbacks=[CtrlCInSecondEpoch()])
    with pytest.raises(KeyboardInterrupt):
        trainer.fit(tiny_data(n_train=64).train, checkpoint_path=tmp_path / "last.pt")
    assert trainer.epochs_saved == 1 and (tmp_path / "last.pt").is_file()
    assert not torch.are_deterministic_algorithms_enabled()


@pytest.mark.parametrize("model_name", ["resnet8", "fmnist-cnn"])
def test_deterministic_algorithms_change_no_bit_of_a_fine_tune(model_name):
    """What keeps `make demo` at exactly its accuracy: the deterministic mode is not a different computation
    on CPU. Same fine-tune (with distillation, BatchNorm, dropout) with and without it."""
    data = tiny_data(n_train=128)
    seed_everything(0)
    teacher = deepslim.create_model(model_name)
    results = []
    for deterministic in (True, False):
        student = copy.deepcopy(teacher)
        kd = Distillation(student, teacher, KD(), data.train.images[:2])
        trainer = Trainer(student, CFG, callbacks=[kd], device="cpu")  # on CUDA the kernels do differ
        if deterministic:
            trainer.fit(data.train, val_data=data.val)
        else:
            trainer._fit(data.train, data.val, None, False)  # the loop without the deterministic context
        results.append(student.state_dict())
    for name, tensor in results[0].items():
        assert torch.equal(tensor, results[1][name]), name
