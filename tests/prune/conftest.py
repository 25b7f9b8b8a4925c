import pytest

import deepslim
from deepslim.testing import tiny_data


@pytest.fixture(scope="package")
def trained_resnet8():
    """(model, data): resnet8 after one epoch on 300 tiny images. Shared: copy the model before changing it."""
    data = tiny_data(n_train=300)
    model = deepslim.create_model("resnet8")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=1, batch_size=32, lr=0.05))
    return model, data
