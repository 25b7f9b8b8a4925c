import json

import pytest
import torch
from torch import nn

import deepslim
from deepslim.core import DeepslimError
from deepslim.testing import ToyResidual


def shrink_first_block(model):
    """Hand-made structured pruning: conv1 of the first ResNet block keeps 5 of 32 filters."""
    block = model.stages[0][0]
    keep = torch.arange(5)
    conv, _bn, nxt = block.conv1, block.bn1, block.conv2
    new_conv = nn.Conv2d(conv.in_channels, 5, 3, 1, 1, bias=False)
    new_conv.weight.data = conv.weight.data[keep].clone()
    new_bn = nn.BatchNorm2d(5)
    new_next = nn.Conv2d(5, nxt.out_channels, 3, 1, 1, bias=False)
    new_next.weight.data = nxt.weight.data[:, keep].clone()
    block.conv1, block.bn1, block.conv2 = new_conv, new_bn, new_next


def factorize_fc(model):
    """Hand-made low-rank factorization: the classifier becomes two Linear layers."""
    fc = model.fc
    model.fc = nn.Sequential(nn.Linear(fc.in_features, 3, bias=False), nn.Linear(3, fc.out_features))


def test_pruned_and_factorized_models_round_trip(tmp_path):
    torch.manual_seed(0)
    model = deepslim.create_model("resnet8")
    shrink_first_block(model)
    factorize_fc(model)
    model.eval()
    x = torch.randn(2, 1, 28, 28)
    deepslim.save(model, tmp_path / "m")
    loaded = deepslim.load(tmp_path / "m")
    assert loaded.stages[0][0].conv1.out_channels == 5
    assert isinstance(loaded.fc, nn.Sequential)
    assert torch.equal(model(x), loaded(x))


def test_custom_graph_round_trips_and_metadata_is_kept(tmp_path):
    model = ToyResidual().eval()
    deepslim.save(model, tmp_path / "toy", metadata={"dataset": {"name": "synthetic"}, "metrics": {"acc": 1.0}})
    meta = json.loads((tmp_path / "toy" / "metadata.json").read_text())
    assert meta["metrics"] == {"acc": 1.0} and meta["versions"]["torch"] == torch.__version__
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(deepslim.load(tmp_path / "toy")(x), model(x))


def test_refuses_to_overwrite_unless_asked(tmp_path):
    model = deepslim.create_model("lenet5")
    deepslim.save(model, tmp_path / "m")
    before = (tmp_path / "m" / "weights.safetensors").read_bytes()
    with pytest.raises(DeepslimError, match="already holds"):
        deepslim.save(deepslim.create_model("lenet5"), tmp_path / "m")
    assert (tmp_path / "m" / "weights.safetensors").read_bytes() == before
    deepslim.save(deepslim.create_model("lenet5"), tmp_path / "m", overwrite=True)


def test_corrupt_truncated_or_incomplete_artifacts_are_clear_errors(tmp_path):
    deepslim.save(deepslim.create_model("lenet5"), tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(DeepslimError, match="corrupt or truncated"):
        deepslim.load(tmp_path / "m")
    (tmp_path / "m" / "architecture.json").write_text("{not json")
    with pytest.raises(DeepslimError, match="corrupt"):
        deepslim.load(tmp_path / "m")
    (tmp_path / "m" / "metadata.json").unlink()
    with pytest.raises(DeepslimError, match="metadata.json is missing"):
        deepslim.load(tmp_path / "m")
    with pytest.raises(DeepslimError, match="not a folder"):
        deepslim.load(tmp_path / "nothing-here")


def test_weights_from_another_model_are_refused(tmp_path):
    deepslim.save(deepslim.create_model("lenet5"), tmp_path / "a")
    deepslim.save(deepslim.create_model("lenet5", num_classes=3), tmp_path / "b")
    (tmp_path / "a" / "weights.safetensors").write_bytes((tmp_path / "b" / "weights.safetensors").read_bytes())
    with pytest.raises(DeepslimError, match="do not fit its architecture"):
        deepslim.load(tmp_path / "a")


def test_untrusted_classes_are_never_imported(tmp_path):
    deepslim.save(deepslim.create_model("lenet5"), tmp_path / "m")
    arch = tmp_path / "m" / "architecture.json"
    spec = json.loads(arch.read_text())
    spec["class"] = "os.system"
    arch.write_text(json.dumps(spec))
    with pytest.raises(DeepslimError, match="outside torch.nn and deepslim"):
        deepslim.load(tmp_path / "m")


class UserNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)


def test_user_classes_are_refused_at_save_time_with_a_hint(tmp_path):
    with pytest.raises(DeepslimError) as err:
        deepslim.save(UserNet(), tmp_path / "u")
    assert "allow_modules" in err.value.hint
    assert not (tmp_path / "u" / "metadata.json").exists()
    deepslim.save(UserNet(), tmp_path / "u", allow_modules=(__name__.split(".")[0],))
    assert isinstance(deepslim.load(tmp_path / "u", allow_modules=(__name__.split(".")[0],)), UserNet)


def test_sparse_weights_are_stored_compactly_and_restored_exactly(tmp_path):
    torch.manual_seed(0)
    dense_model = deepslim.create_model("fmnist-cnn").eval()
    deepslim.save(dense_model, tmp_path / "dense")
    sparse_model = deepslim.create_model("fmnist-cnn").eval()
    sparse_model.load_state_dict(dense_model.state_dict())
    deepslim.prune_(sparse_model, deepslim.MagnitudePruning(0.9, scope="global"))
    deepslim.save(sparse_model, tmp_path / "sparse")
    dense_bytes = (tmp_path / "dense" / "weights.safetensors").stat().st_size
    sparse_bytes = (tmp_path / "sparse" / "weights.safetensors").stat().st_size
    assert sparse_bytes < 0.3 * dense_bytes
    loaded = deepslim.load(tmp_path / "sparse")
    for key, value in sparse_model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
