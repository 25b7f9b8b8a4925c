"""Headlines that can't mislead: one comparison, spreads, slow stages flagged or dropped, what a run records.

Timing-dependent decisions are tested with an injected comparison (``fake_compare``) so they
are deterministic; no test asserts a timing.
"""

import json

import pytest
import torch

import deepslim
from deepslim.data import load_dataset
from deepslim.pipeline import compress, parse_recipe
from deepslim.pipeline import runner as runner_module
from deepslim.pipeline.headline import check_targets, size_headline, summary_line
from deepslim.pipeline.report import axis_limits, render_report
from deepslim.profiling.latency import describe_speedup, speedup_verdict
from deepslim.testing import tiny_data


def _row(median, low, high, rounds=9):
    return {"speedup": median, "speedup_min": low, "speedup_max": high, "rounds": rounds}


@pytest.mark.parametrize("row, verdict, text", [
    (_row(4.71, 2.43, 5.47, 64), "faster", "4.71x faster [2.43-5.47], 64 rounds"),
    (_row(1.2, 0.69, 1.94), "no change", "no measurable change (1.20x [0.69-1.94], 9 rounds)"),
    (_row(1.0, 1.0, 1.0, 1), "no change", "no measurable change (1.00x [1.00-1.00], 1 round)"),
    (_row(0.83, 0.71, 0.97), "slower", "1.20x slower (0.83x [0.71-0.97], 9 rounds)"),
])
def test_one_wording_for_every_speedup(row, verdict, text):
    assert speedup_verdict(row) == verdict
    assert describe_speedup(row) == text


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    data = tiny_data(n_train=200)
    model = deepslim.create_model("resnet8")
    deepslim.train(model, data.train, deepslim.TrainConfig(epochs=1, batch_size=32, lr=0.05))
    return model.eval(), data


def test_keep_if_faster_drops_a_slower_stage_and_later_stages_start_from_its_input(trained, tmp_path, fake_compare):
    model, data = trained
    recipe = parse_recipe("""name: keep
stages:
  - technique: channel_pruning
    name: first
    ratio: 0.3
  - technique: channel_pruning
    name: slow
    ratio: 0.3
    keep: if_faster
  - technique: channel_pruning
    name: last
    ratio: 0.2
""")
    # "first" is slower than the baseline (flagged, kept: keep defaults to always); "slow" is slower
    # than its input (dropped); "last" is faster than its input.
    compare = fake_compare({"00-baseline": 1.0, "01-first": 1.25, "02-slow": 3.0, "03-last": 0.5})
    out = tmp_path / "out"
    metrics = compress(model, data, recipe, out, device=torch.device("cpu"), latency_seconds=0.01, compare=compare)
    first, slow, last = metrics["stages"]
    assert [s["kept"] for s in metrics["stages"]] == [True, False, True]
    assert slow["keep_check"]["vs_input"]["1"]["speedup"] == pytest.approx(1.25 / 3.0)
    assert "slower than its input" in slow["keep_check"]["reason"]
    assert compare.calls[0] == [str(out / "stages/01-first/model.onnx"), str(out / "stages/02-slow/model.onnx")]
    # "last" pruned 20% of "first", not of "slow": more MACs than "slow", which pruned 30% of "first".
    assert last["input"] == 1 and last["macs"] > slow["macs"]
    assert metrics["final"]["index"] == 3
    flags = metrics["flags"]
    assert any(f.startswith("stage 1 (first) is slower than its input (baseline)") and "keep: if_faster" in f
               for f in flags)
    assert any(f.startswith("stage 2 (slow) was dropped") for f in flags)
    assert metrics["comparison"]["stages"]["1"]["slower_than_input"] == ["1", "64"]
    assert metrics["comparison"]["stages"]["3"]["slower_than_input"] == []
    saved = json.loads((out / "model" / "metadata.json").read_text())["compression"]
    assert saved["dropped"] == ["2. slow"] and saved["stages"][-1].startswith("3. last")
    page = (out / "report.html").read_text()
    assert "dropped: slower than its input" in page and page.count('class="flagged"') == 2


def test_a_dropped_final_int8_stage_ships_the_float_model(trained, tmp_path, fake_compare):
    model, data = trained
    recipe = parse_recipe("stages:\n  - technique: channel_pruning\n    ratio: 0.3\n"
                          "  - technique: quantize\n    keep: if_faster\n")
    out = tmp_path / "out"
    metrics = compress(model, data, recipe, out, device=torch.device("cpu"), latency_seconds=0.01,
                       compare=fake_compare({"model.int8.onnx": 2.0}))
    assert metrics["stages"][1]["kept"] is False and not metrics["final"]["int8"]
    assert (out / "model.onnx").read_bytes() == (out / "stages/01-channel_pruning/model.onnx").read_bytes()
    assert not (out / "model" / "model.int8.onnx").exists()
    # The headline is the shipped stage's row of the one comparison, and says what it measured.
    row = metrics["comparison"]["stages"]["1"]["vs_baseline"]["1"]
    assert metrics["final"]["speedup_vs_baseline"]["onnxruntime"]["1"] == row
    assert metrics["headline"]["text"].startswith(f"onnxruntime batch 1: {describe_speedup(row)};")


def test_sparse_headline_uses_the_compact_weights_file(trained, tmp_path, fake_compare):
    model, data = trained
    recipe = parse_recipe("stages:\n  - technique: magnitude_pruning\n    sparsity: 0.9\n")
    metrics = compress(model, data, recipe, tmp_path / "out", device=torch.device("cpu"), latency_seconds=0.01,
                       compare=fake_compare({}))
    final, base = metrics["final"], metrics["baseline"]
    assert final["size_bytes"] > 0.9 * base["size_bytes"]  # the dense ONNX file barely shrinks ...
    assert final["weights_bytes"] < 0.4 * base["weights_bytes"]  # ... the compact weights file does
    size = metrics["headline"]["size"]
    assert size["basis"] == "weights"
    assert size["smaller"] == pytest.approx(base["weights_bytes"] / final["weights_bytes"])
    assert f"{size['smaller']:.1f}x smaller (compact weights file" in metrics["headline"]["text"]
    # Equal times: the spread is exactly 1.0x, which is no measurable change, not "1.0x faster".
    assert "batch 1: no measurable change (1.00x" in metrics["headline"]["text"]


def test_targets_are_checked_against_the_headline_numbers():
    row = _row(4.71, 2.43, 5.47, 64)
    metrics = {"baseline": {"accuracy": 94.64, "size_bytes": 4_900_000},
               "final": {"accuracy": 94.33, "size_bytes": 350_000, "int8": True,
                         "speedup_vs_baseline": {"onnxruntime": {"1": row, "64": _row(3.5, 2.0, 4.0)}}}}
    results = check_targets(metrics, {"max_accuracy_drop": 0.5, "min_speedup_b1": 4, "min_speedup_b64": 4,
                                      "min_smaller": 10})
    assert {k: r["met"] for k, r in results.items()} == {"max_accuracy_drop": True, "min_speedup_b1": True,
                                                         "min_speedup_b64": False, "min_smaller": True}
    assert results["max_accuracy_drop"]["value"] == pytest.approx(0.31)
    assert size_headline(metrics)["basis"] == "onnx"
    assert "14.0x smaller (ONNX file" in summary_line(metrics)


def test_report_axes_do_not_zoom_into_noise():
    (x0, x1), (y0, y1) = axis_limits([0.5, 0.2, 0.1], [94.64, 94.4, 94.33])
    assert x0 == 0 and x1 > 0.5
    assert y1 - y0 >= 5 and y0 < 94.33 and y1 > 94.64
    _, (y0, y1) = axis_limits([1.0], [99.9])
    assert y1 <= 100.0


def test_cli_records_and_reports_the_run(synthetic_run, cli, tmp_path, monkeypatch, fake_compare):
    monkeypatch.setattr(runner_module, "interleave_latency", fake_compare({"01-channel_pruning": 0.5}))
    source = synthetic_run("resnet8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: t\ntargets: {min_speedup_b1: 1.5, min_smaller: 100}\n"
                      "stages:\n  - technique: channel_pruning\n    ratio: 0.25\n")
    out = tmp_path / "out"
    code, stdout, err = cli("compress", source, "--recipe", recipe, "--out", out, "--subset", "128",
                            "--latency-seconds", "0.01")
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["command"] == f"deepslim compress {source} --recipe {recipe} --out {out} --subset 128 " \
                                 "--latency-seconds 0.01"
    assert metrics["data"]["subset"] == 128 and metrics["data"]["train_images"] == len(
        load_dataset("synthetic", subset=128).train)
    assert metrics["threads"] == torch.get_num_threads() and metrics["started"] <= metrics["finished"]
    assert metrics["run_seconds"] > 0
    assert metrics["targets"]["min_speedup_b1"] == {"target": 1.5, "value": pytest.approx(2.0), "met": True}
    assert metrics["targets"]["min_smaller"]["met"] is False
    # The CLI says what it used and what came out: the speed-up line of the table is the headline's.
    assert "(--subset 128)" in err and "BatchNorm statistics of" in err
    assert "  1. channel_pruning: batch 1 2.00x faster [2.00-2.00], 6 rounds;" in stdout
    assert "onnxruntime batch 1: 2.00x faster [2.00-2.00], 6 rounds;" in stdout
    assert "targets: batch-1 speed-up 2.00x >= 1.5: met; size reduction" in stdout and "NOT met" in stdout
    page = (out / "report.html").read_text()
    for shown in (metrics["command"], "--subset 128", metrics["started"], "min_speedup_b1", "NOT met",
                  f"<td>threads</td><td>{metrics['threads']}</td>", "2.00x faster [2.00-2.00], 6 rounds"):
        assert shown in page
    assert render_report(metrics) == page


def test_cli_interrupt_names_the_command_that_resumes(synthetic_run, cli, tmp_path, monkeypatch):
    from deepslim.pipeline import techniques

    def interrupted(ctx, config):
        raise KeyboardInterrupt

    monkeypatch.setattr(techniques.TECHNIQUES["channel_pruning"], "apply", interrupted)
    source = synthetic_run("resnet8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("stages:\n  - technique: channel_pruning\n    ratio: 0.25\n")
    out = tmp_path / "out"
    code, _, err = cli("compress", source, "--recipe", recipe, "--out", out, "--subset", "64",
                       "--latency-seconds", "0.01", "--overwrite")
    assert code == 130 and "interrupted during stage 1 (channel_pruning)" in err
    # The exact command, less --overwrite (which would throw the finished stages away).
    assert f"rerun `deepslim compress {source} --recipe {recipe} --out {out} --subset 64 --latency-seconds 0.01` " \
           "to resume" in err
