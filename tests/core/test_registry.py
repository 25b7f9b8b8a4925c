import pytest

from deepslim.core import DeepslimError, Registry


def test_register_get_and_list():
    reg = Registry("widget")

    @reg.register("alpha", family="a")
    def alpha():
        """The first widget."""
        return 1

    assert reg.names() == ["alpha"]
    assert reg.get("alpha")() == 1
    assert reg.info("alpha") == {"family": "a", "description": "The first widget."}
    with pytest.raises(ValueError):
        reg.register("alpha")(alpha)


def test_unknown_name_lists_valid_ones_and_near_match():
    reg = Registry("widget")
    reg.register("resnet")(object)
    reg.register("lenet5")(object)
    with pytest.raises(DeepslimError) as err:
        reg.get("resnt")
    assert "unknown widget 'resnt'" in err.value.message
    assert "did you mean 'resnet'" in err.value.hint and "lenet5" in err.value.hint
