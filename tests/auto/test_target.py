import pytest

from deepslim.auto.target import TARGET_METRICS, format_seconds, parse_budget, parse_target
from deepslim.core import DeepslimError


def test_targets_parse_and_check():
    t = parse_target("speedup>=6")
    assert (t.metric, t.op, t.value) == ("speedup", ">=", 6.0)
    assert t.met({"speedup": 6.2}) and not t.met({"speedup": 5.9}) and not t.met({})
    m = parse_target(" macs <= 5e6 ")
    assert m.minimize() and m.met({"macs": 4e6}) and not m.met({"macs": 6e6})
    assert str(parse_target("size_mb<=0.5")) == "size_mb<=0.5"


def test_unknown_metric_lists_the_valid_ones():
    with pytest.raises(DeepslimError) as err:
        parse_target("latency<=3")
    text = str(err.value)
    assert "unknown metric 'latency'" in text
    assert all(name in text for name in TARGET_METRICS)


@pytest.mark.parametrize("bad, says", [("speedup<=6", "aimed at with >="), ("macs>=1e6", "aimed at with <="),
                                       ("speedup", "not METRIC>=N"), ("speedup>=0", "must be > 0"),
                                       ("speedup>=x", "not METRIC>=N")])
def test_bad_targets_say_why(bad, says):
    with pytest.raises(DeepslimError, match=says):
        parse_target(bad)


def test_budgets():
    assert parse_budget("2h") == 7200
    assert parse_budget("1h30m") == 5400
    assert parse_budget("45s") == 45 and parse_budget("600") == 600 and parse_budget("90min") == 5400
    for bad in ("", "two hours", "2x", "0s"):
        with pytest.raises(DeepslimError):
            parse_budget(bad)
    assert format_seconds(5400) == "1h30m" and format_seconds(75) == "1m15s" and format_seconds(9) == "9s"
