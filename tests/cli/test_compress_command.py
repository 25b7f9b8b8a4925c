import json

from deepslim.profiling.latency import describe_speedup


def test_compress_cli_runs_and_refuses_bad_input(synthetic_run, cli, tmp_path):
    source = synthetic_run("resnet8")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: t\nstages:\n  - technique: channel_pruning\n    ratio: 0.25\n")
    out = tmp_path / "out"
    code, stdout, _ = cli("--quiet", "compress", source, "--recipe", recipe, "--out", out, "--subset", "128",
                          "--latency-seconds", "0.05")
    metrics = json.loads((out / "metrics.json").read_text())
    assert code == 0 and {"baseline", "stages", "final"} <= set(metrics)
    # Real timing: the table's speed-up for the final stage and the headline are the same numbers.
    row = metrics["comparison"]["stages"]["1"]["vs_baseline"]
    table = next(line for line in stdout.splitlines() if line.startswith("  1. channel_pruning: batch 1 "))
    assert table == (f"  1. channel_pruning: batch 1 {describe_speedup(row['1'])}; "
                     f"batch 64 {describe_speedup(row['64'])}")
    assert f"onnxruntime batch 1: {describe_speedup(row['1'])}; batch 64: {describe_speedup(row['64'])};" in stdout
    code, stdout, _ = cli("report", out)
    assert code == 0 and "report.html" in stdout
    code, _, err = cli("compress", source, "--recipe", recipe, "--out", out)
    assert code == 2 and "already holds a finished compression run" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("stages:\n  - technique: prune_channels\n")
    code, _, err = cli("compress", source, "--recipe", bad, "--out", tmp_path / "x")
    assert code == 2 and "recipe line 2: unknown technique 'prune_channels'" in err
    code, _, err = cli("compress", source, "--recipe", tmp_path / "missing.yaml", "--out", tmp_path / "x")
    assert code == 2 and "cannot read recipe" in err
    code, _, err = cli("compress", source, "--recipe", recipe, "--out", source)
    assert code == 2 and "never overwritten" in err
    code, _, err = cli("report", tmp_path / "nothing")
    assert code == 2 and "cannot read" in err
    assert not (tmp_path / "x").exists()
