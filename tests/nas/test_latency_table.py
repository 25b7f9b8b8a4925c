"""The per-block latency table: structure, the predictor's arithmetic, refusal of bad tables, the quality report
on a real (tiny) table.

Timings are measured with tiny budgets and never asserted beyond being positive numbers.
"""

import copy
import json

import pytest

from deepslim.core import DeepslimError
from deepslim.nas import Evaluator, OFASupernet, get_space
from deepslim.nas.latency_quality import predictor_quality
from deepslim.nas.latency_table import (
    LatencyTable,
    arch_keys,
    build_latency_table,
    space_parts,
)
from deepslim.testing import tiny_data

SMALL = dict(stem_channels=4, widths=(8, 16), strides=(1, 2), depth_choices=(1, 2), kernel_choices=(3, 5),
             expand_choices=(3, 6), head_channels=16)


@pytest.fixture(scope="module")
def space():
    return get_space("ofa-mbconv", **SMALL)


@pytest.fixture(scope="module")
def table(space):
    return build_latency_table(space, batch_sizes=(1, 4), min_seconds=0.001, rounds=1, fit_subnets=3)


def synthetic(space):
    """A table whose entries grow with kernel and expand by construction (no timing involved)."""
    entries = {}
    for part in space_parts(space):
        if part.key in ("stem", "head"):
            entries[part.key] = {1: 0.01, 4: 0.03}
        else:
            k = int(part.key.split(".k")[1].split(".")[0])
            e = int(part.key.split(".e")[1])
            entries[part.key] = {1: 0.001 * k * e, 4: 0.003 * k * e}
    return LatencyTable(space, (1, 4), entries, {1: -0.002, 4: -0.004}, {1: -0.0005, 4: -0.001})


def test_parts_cover_every_block_configuration_at_its_input_size(space):
    parts = {p.key: p for p in space_parts(space)}
    assert len(parts) == 2 + 2 * 2 * 2 * 2  # stem, head, stages x first/rest x kernels x expands
    assert parts["stem"].input_shape == (1, 28, 28)
    assert parts["s0.first.k3.e3"].input_shape == (4, 14, 14)   # after the stride-2 stem, stem channels in
    assert parts["s0.rest.k5.e6"].input_shape == (8, 14, 14)
    assert parts["s1.first.k3.e6"].input_shape == (8, 14, 14)
    assert parts["s1.rest.k3.e6"].input_shape == (16, 7, 7)     # after the stage's stride 2
    assert parts["head"].input_shape == (16, 7, 7)
    assert len(space_parts(get_space("ofa-mbconv"))) == 74


def test_measured_table_has_every_entry_and_records_its_environment(table, space):
    keys = {p.key for p in space_parts(space)}
    assert set(table.entries) == keys
    assert all(v > 0 for row in table.entries.values() for v in row.values())
    assert set(table.overhead_ms) == set(table.per_part_ms) == {1, 4}
    env = table.environment
    assert env["threads"] == 2 and env["runtime"] == "onnxruntime" and env["onnxruntime"] and env["cpu"]
    assert "T" in env["date"]
    assert len(table.fit["archs"]) == 3 and len(table.fit["measured_ms"]) == 3


def test_predictor_is_the_sum_of_the_arch_parts_plus_the_overhead(table, space):
    arch = space.sample(3)
    for b in (1, 4):
        total = sum(table.entries[k][b] for k in arch_keys(arch))
        assert table.parts_ms(arch, b) == pytest.approx(total)
        n = 2 + sum(arch.depths)
        assert table.predict(arch, b) == pytest.approx(total + table.overhead_ms[b] + n * table.per_part_ms[b])
    assert arch_keys(arch)[0] == "stem" and arch_keys(arch)[-1] == "head"
    assert len(arch_keys(arch)) == 2 + sum(arch.depths)
    with pytest.raises(DeepslimError, match="no batch size 64"):
        table.predict(arch, 64)


def test_predictions_are_positive_and_grow_with_kernel_and_expand(space):
    table = synthetic(space)
    archs = [space.sample(i) for i in range(40)]
    assert all(table.predict(a, b) > 0 for a in archs for b in (1, 4))
    big_k = space.sample(0, kernels=(5,), depths=(2,))
    small_k = space.sample(0, kernels=(3,), depths=(2,))
    assert table.predict(big_k, 1) > table.predict(small_k, 1)
    small_e = [space.sample(i, expands=(3,)) for i in range(20)]
    big_e = [space.sample(i, expands=(6,)) for i in range(20)]
    assert sum(table.predict(a, 4) for a in big_e) > sum(table.predict(a, 4) for a in small_e)
    assert table.predict(space.largest(), 1) > table.predict(space.smallest(), 1)


def test_round_trip_and_refusal_of_corrupt_or_foreign_tables(table, space, tmp_path):
    path = table.save(tmp_path / "latency.json")
    again = LatencyTable.load(path, space)
    assert again.entries == table.entries and again.overhead_ms == table.overhead_ms
    assert again.per_part_ms == table.per_part_ms
    assert again.predict(space.largest(), 4) == pytest.approx(table.predict(space.largest(), 4))

    def refused(data_or_text, match, against=space):
        bad = tmp_path / "bad.json"
        bad.write_text(data_or_text if isinstance(data_or_text, str) else json.dumps(data_or_text))
        with pytest.raises(DeepslimError, match=match) as info:
            LatencyTable.load(bad, against)
        assert "\n" not in info.value.message and "latency-table" in (info.value.hint or "")

    good = table.to_dict()
    refused('{"format": "deepslim-latency-table", ', "not valid JSON")
    refused([1, 2], "not a deepslim latency table")
    refused({**good, "format": "something"}, "not a deepslim latency table")
    refused({**good, "version": 99}, "format version 99")
    missing = copy.deepcopy(good)
    del missing["entries"]["s1.rest.k5.e6"]
    refused(missing, r"lacks 1 entry \(e.g. s1.rest.k5.e6\)")
    no_batch = copy.deepcopy(good)
    del no_batch["entries"]["stem"]["4"]
    refused(no_batch, "lacks 1 entry")
    negative = copy.deepcopy(good)
    negative["entries"]["head"]["1"] = -1.0
    refused(negative, "bad entry: head at batch 1")
    text = copy.deepcopy(good)
    text["entries"]["head"]["1"] = "fast"
    refused(text, "bad entry")
    refused({**good, "overhead_ms": {"1": 0.0}}, "no valid overhead_ms for batch 4")
    refused({k: v for k, v in good.items() if k != "per_part_ms"}, "no valid per_part_ms for batch 1")
    refused(good, "another search space", against=get_space("ofa-mbconv", **{**SMALL, "head_channels": 32}))
    with pytest.raises(DeepslimError, match="no latency table at") as info:
        LatencyTable.load(tmp_path / "none.json")
    assert "deepslim nas latency-table" in info.value.hint


def test_quality_report_structure(table, space):
    report = predictor_quality(table, 4, min_seconds=0.001)
    fitted = {json.dumps(a, sort_keys=True) for a in table.fit["archs"]}
    assert len(report["rows"]) == 4
    assert not fitted & {json.dumps(r["arch"], sort_keys=True) for r in report["rows"]}  # held out
    for b in ("1", "4"):
        q = report[b]
        assert q["n"] == 4 and q["mean_abs_percent_error"] >= 0 and 0 <= q["within_10_percent"] <= 100
        assert -1 <= q["kendall_tau"] <= 1
    row = report["rows"][0]
    assert row["predicted_ms_1"] == pytest.approx(table.predict(space.validate(row["arch"]), 1))


def test_the_table_plugs_into_the_evaluator(space):
    table = synthetic(space)
    net = OFASupernet.from_space(space)
    data = tiny_data()
    judge = Evaluator(net, data.train, data.val, calibration_size=32, latency=table.latency_fn(4))
    arch = space.sample(5)
    assert judge(arch).latency_ms == pytest.approx(table.predict(arch, 4))
