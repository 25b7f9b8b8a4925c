from dataclasses import dataclass

import pytest

from deepslim.core import Config, DeepslimError


@dataclass
class Example(Config):
    ratio: float = 0.5
    mode: str = "l1"
    sizes: tuple = (1, 2)

    def __post_init__(self):
        self.check_range("ratio", 0.0, 1.0, low_inclusive=False)
        self.check_choice("mode", ("l1", "l2"))


def test_round_trip_keeps_type_tag_and_values():
    cfg = Example(ratio=0.25, mode="l2", sizes=(3, 4))
    data = cfg.to_dict()
    assert data == {"type": "Example", "ratio": 0.25, "mode": "l2", "sizes": [3, 4]}
    assert Config.from_dict(data) == cfg
    assert Example.from_dict({"ratio": 0.1}) == Example(ratio=0.1)


def test_validation_names_field_and_allowed_values():
    with pytest.raises(DeepslimError) as err:
        Example(mode="l3")
    assert "Example.mode" in str(err.value) and "'l1'" in str(err.value)
    with pytest.raises(DeepslimError, match=r"Example.ratio .*\(0.0, 1.0\]"):
        Example(ratio=0.0)
    with pytest.raises(DeepslimError, match="must be a number"):
        Example(ratio="half")


def test_unknown_field_and_type_suggest_near_matches():
    with pytest.raises(DeepslimError, match="did you mean 'ratio'"):
        Config.from_dict({"type": "Example", "ration": 0.2})
    with pytest.raises(DeepslimError, match="did you mean 'Example'"):
        Config.from_dict({"type": "Exampel"})
