import json

import numpy as np
import pytest
import torch

from deepslim.core import DeepslimError
from deepslim.nas import Arch, get_space, list_spaces, space_from_dict


@pytest.fixture
def space():
    return get_space("ofa-mbconv")


def test_registered_and_round_trips(space):
    assert "ofa-mbconv" in list_spaces()
    again = space_from_dict(json.loads(json.dumps(space.to_dict())))
    assert again == space
    assert get_space("ofa-mbconv", widths=(8, 8, 16, 16)).widths == (8, 8, 16, 16)


def test_sampled_archs_are_valid_and_deterministic(space):
    for seed in range(20):
        space.validate(space.sample(seed))
    assert space.sample(3) == space.sample(3)
    assert space.sample(torch.Generator().manual_seed(5)) == space.sample(torch.Generator().manual_seed(5))
    assert space.sample(np.random.default_rng(5)) == space.sample(np.random.default_rng(5))
    assert len({space.sample(s).key() for s in range(20)}) == 20
    # no generator: torch's global one, so successive calls differ and torch.manual_seed repeats them
    torch.manual_seed(0)
    first = [space.sample() for _ in range(3)]
    torch.manual_seed(0)
    assert [space.sample() for _ in range(3)] == first and len(set(first)) == 3


def test_sample_restricted_to_choices(space):
    arch = space.sample(0, depths=(4,), kernels=(7,))
    assert arch.depths == (4,) * 4 and all(k == 7 for ks in arch.kernels for k in ks)


def test_largest_and_smallest(space):
    big, small = space.largest(), space.smallest()
    assert big.depths == (4,) * 4 and set(big.kernels[0]) == {7} and set(big.expands[3]) == {6}
    assert small.depths == (2,) * 4 and set(small.kernels[1]) == {3} and set(small.expands[2]) == {3}


def test_arch_json_and_hash(space):
    arch = space.sample(1)
    again = Arch.from_dict(json.loads(json.dumps(arch.to_dict())))
    assert again == arch and hash(again) == hash(arch) and again.key() == arch.key()


@pytest.mark.parametrize("edit, field", [
    (lambda d: d["depths"].__setitem__(1, 5), "arch.depths[1]"),
    (lambda d: d["kernels"][2].__setitem__(0, 4), "arch.kernels[2][0]"),
    (lambda d: d["expands"][0].append(3), "arch.expands[0] has 3 blocks"),
    (lambda d: d["depths"].pop(), "arch.depths has 3 stages"),
])
def test_validation_names_the_bad_field(space, edit, field):
    data = space.smallest().to_dict()
    edit(data)
    with pytest.raises(DeepslimError, match=field.replace("[", r"\[").replace("]", r"\]")):
        space.validate(data)


def test_malformed_arch_and_space_options_are_refused(space):
    with pytest.raises(DeepslimError, match="lacks expands"):
        Arch.from_dict({"depths": [2], "kernels": [[3, 3]]})
    with pytest.raises(DeepslimError, match="kernel_choices"):
        get_space("ofa-mbconv", kernel_choices=(3, 4))
    with pytest.raises(DeepslimError, match="strides"):
        get_space("ofa-mbconv", strides=(1, 2))
    with pytest.raises(DeepslimError, match="unknown search space"):
        get_space("ofa-mbconvv")


def test_mutation(space):
    arch = space.sample(0)
    assert space.mutate(arch, 1, probability=0.0) == arch
    children = [space.mutate(arch, s, probability=0.3) for s in range(10)]
    assert all(space.validate(c) for c in children)
    assert sum(c != arch for c in children) >= 8
    assert space.mutate(arch, 4, 0.3) == space.mutate(arch, 4, 0.3)


def test_crossover_takes_genes_from_parents(space):
    a, b = space.largest(), space.smallest()
    for seed in range(10):
        child = space.validate(space.crossover(a, b, seed))
        assert all(d in (2, 4) for d in child.depths)
        assert all(k in (3, 7) for ks in child.kernels for k in ks)
    children = {space.crossover(a, b, s).key() for s in range(10)}
    assert len(children) > 2


def test_encoding(space):
    big, small = space.largest(), space.smallest()
    e_big, e_small = space.encode(big), space.encode(small)
    assert e_big.shape == e_small.shape == (space.encoding_size,)
    # one-hot per stage depth, then one kernel and one expand per active block
    assert e_big.sum() == 4 + 2 * 16 and e_small.sum() == 4 + 2 * 8
    assert not np.array_equal(e_big, e_small)
    assert not np.array_equal(space.encode(space.sample(0)), space.encode(space.sample(1)))
