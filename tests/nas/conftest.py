import pytest
import torch

from deepslim.nas import OFASupernet

TINY = dict(stem_channels=4, widths=(4, 4, 8, 8), head_channels=16, depth_choices=(1, 2))


@pytest.fixture
def tiny_supernet():
    """A tiny supernet with random BN statistics and kernel transforms, so equalities are not trivial."""
    torch.manual_seed(0)
    net = OFASupernet(**TINY)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.5, 2.0)
                m.weight.normal_()
                m.bias.normal_()
        for name, p in net.named_parameters():
            if "transform" in name:
                p.add_(0.1 * torch.randn_like(p))
    return net.eval()
