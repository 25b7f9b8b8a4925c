import copy

import pytest
import torch
import torch.nn.functional as F

import deepslim
from deepslim.core import DeepslimError
from deepslim.core.inputs import call_model
from deepslim.distill import KD, Distillation, distill, kd_loss, soft_loss
from deepslim.testing import tiny_data

X = torch.randn(2, 1, 28, 28)


@pytest.fixture(scope="module")
def data():
    return tiny_data(n_train=256)


@pytest.fixture(scope="module")
def teacher(data):
    torch.manual_seed(0)
    model = deepslim.create_model("resnet8")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=4, batch_size=32, lr=0.05))
    return model.eval()


def test_kd_loss_is_cross_entropy_at_alpha_zero_and_scaled_kl_at_one():
    s, t, y = torch.randn(8, 10), torch.randn(8, 10), torch.randint(0, 10, (8,))
    assert torch.isclose(kd_loss(s, t, y, alpha=0.0), F.cross_entropy(s, y))
    kl = F.kl_div(F.log_softmax(s / 3, 1), F.softmax(t / 3, 1), reduction="batchmean") * 9
    assert torch.isclose(kd_loss(s, t, y, temperature=3.0, alpha=1.0), kl, atol=1e-6)
    assert soft_loss(t, t, 4.0).abs() < 1e-6


def test_alpha_zero_training_equals_plain_training(data, teacher):
    cfg = deepslim.TrainConfig(epochs=1, batch_size=32, lr=0.05, seed=3)
    torch.manual_seed(1)
    plain = deepslim.create_model("lenet5")
    kd_student = copy.deepcopy(plain)
    deepslim.train(plain, data.train, cfg)
    distill(kd_student, copy.deepcopy(teacher), data.train, cfg, KD(alpha=0.0))
    for a, b in zip(plain.parameters(), kd_student.parameters()):
        assert torch.allclose(a, b, atol=1e-6)


def test_teacher_gets_no_gradient_and_stays_frozen(data, teacher, device):
    teacher = copy.deepcopy(teacher)
    before = copy.deepcopy(teacher.state_dict())
    distill(deepslim.create_model("lenet5"), teacher, data.train, deepslim.TrainConfig(epochs=1, batch_size=32),
            KD(hints={"3": "stages.1"}), device=device)
    assert all(p.grad is None for p in teacher.parameters())
    assert all(torch.equal(before[k].to(device), v) for k, v in teacher.state_dict().items())  # BN stats included
    assert all(p.requires_grad for p in teacher.parameters())  # flags restored after training


def test_adapters_only_where_shapes_differ(teacher):
    same = Distillation(deepslim.create_model("resnet8"), teacher, KD(hints={"stages.1": "stages.1"}), X)
    assert len(same.adapters) == 0
    other = Distillation(deepslim.create_model("lenet5"), teacher, KD(hints={"3": "stages.1", "9": "fc"}), X)
    assert set(other.adapters) == {"3", "9"}
    assert isinstance(other.adapters["3"][0], torch.nn.Conv2d) and isinstance(other.adapters["9"], torch.nn.Linear)
    attention = Distillation(deepslim.create_model("lenet5"), teacher, KD(hints={"3": "stages.1"}, hint_loss="attention"), X)
    assert len(attention.adapters) == 0


def test_kd_moves_the_student_toward_the_teacher(data, teacher):
    torch.manual_seed(0)
    student = deepslim.create_model("lenet5")
    images = data.train.images[:128]

    def gap():
        with torch.no_grad():
            return soft_loss(call_model(student.eval(), images), call_model(teacher, images), 1.0).item()

    before = gap()
    distill(student, teacher, data.train, deepslim.TrainConfig(epochs=4, batch_size=32, lr=3e-3, optimizer="adamw"),
            KD(alpha=1.0, temperature=1.0))
    assert gap() < 0.5 * before


def test_cached_teacher_logits_give_the_same_training(data, teacher):
    cfg = deepslim.TrainConfig(epochs=2, batch_size=32, lr=0.05, augment=False, seed=0)
    torch.manual_seed(2)
    a = deepslim.create_model("lenet5")
    b = copy.deepcopy(a)
    distill(a, teacher, data.train, cfg, KD())
    distill(b, teacher, data.train, cfg, KD(cache_teacher=True))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, atol=1e-5)
    with pytest.raises(DeepslimError, match="augments"):
        distill(deepslim.create_model("lenet5"), teacher, data.train, deepslim.TrainConfig(epochs=1, batch_size=32),
                KD(cache_teacher=True))


def test_the_teacher_follows_the_students_device(data, teacher, device):
    student, cpu_teacher = deepslim.create_model("lenet5").to(device), copy.deepcopy(teacher).cpu()
    Distillation(student, cpu_teacher, KD(hints={"3": "stages.1"}), X)  # X on the CPU too
    assert {p.device for p in cpu_teacher.parameters()} == {next(student.parameters()).device}
    history = distill(student, cpu_teacher, data.train, deepslim.TrainConfig(epochs=1, batch_size=64), KD(),
                      device=device)
    assert len(history) == 1 and next(student.parameters()).device.type == device.type


def test_bad_input(teacher):
    with pytest.raises(DeepslimError, match="predicts 10 classes but the student 7"):
        Distillation(deepslim.create_model("lenet5", num_classes=7), teacher, KD(), X)
    with pytest.raises(DeepslimError, match="did you mean"):
        Distillation(deepslim.create_model("resnet8"), teacher, KD(hints={"stages.1": "stages.11"}), X)
    with pytest.raises(DeepslimError, match="the teacher is on meta"):
        Distillation(deepslim.create_model("lenet5"), copy.deepcopy(teacher).to("meta"), KD(), X)
    with pytest.raises(DeepslimError, match="out of range"):
        KD(alpha=1.5)
