import torch

import deepslim
from deepslim.prune import ChannelPruning, prune_
from deepslim.testing import tiny_data
from deepslim.train import evaluate, recalibrate_batchnorm_


def test_recalibration_matches_exact_statistics_and_keeps_weights():
    model = deepslim.create_model("resnet8").eval()
    images = torch.randn(96, 1, 28, 28)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "num_batches" not in k}
    assert recalibrate_batchnorm_(model, images, batch_size=32) == 9
    stem_out = model.stem[0](images)
    assert torch.allclose(model.stem[1].running_mean, stem_out.mean(dim=(0, 2, 3)), atol=1e-5)
    assert not model.training  # the mode it was in is restored
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())


def test_recalibration_recovers_accuracy_after_channel_pruning():
    data = tiny_data(n_train=400)
    model = deepslim.create_model("resnet8")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=3, batch_size=32, lr=0.05))
    prune_(model.eval(), ChannelPruning(ratio=0.5), example_inputs=data.test.images[:1])
    before = evaluate(model, data.test)["accuracy"]
    recalibrate_batchnorm_(model, data.train.images)
    after = evaluate(model, data.test)["accuracy"]
    assert after >= before
