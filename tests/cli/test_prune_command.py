import json

import pytest
import torch

import deepslim


@pytest.fixture(scope="module")
def trained(synthetic_run):
    return synthetic_run("resnet8", epochs=1)


def test_channel_prune_with_finetune(cli, trained, tmp_path):
    code, out, _ = cli("prune", trained, "--method", "channel", "--ratio", "0.5", "--finetune-epochs", "1",
                       "--out", tmp_path / "p", "--json")
    result = json.loads(out)
    assert code == 0 and result["macs_after"] < 0.4 * result["macs_before"]
    model = deepslim.load(tmp_path / "p")
    assert sum(p.numel() for p in model.parameters()) == result["params_after"]
    meta = model.deepslim_metadata
    assert meta["pruning"]["finetune_epochs"] == 1 and meta["metrics"]["test_accuracy"] == result["accuracy_after"]
    assert (tmp_path / "p" / "pruning" / "plan.json").is_file()
    code, out, _ = cli("eval", tmp_path / "p", "--json")
    assert json.loads(out)["accuracy"] == pytest.approx(result["accuracy_after"])


def test_adaptive_prune_meets_the_mac_ratio(cli, trained, tmp_path):
    code, out, _ = cli("prune", trained, "--method", "adaptive", "--mac-ratio", "0.6", "--step", "0.2",
                       "--round-to", "4", "--out", tmp_path / "a", "--json")
    result = json.loads(out)
    assert code == 0 and result["macs_after"] <= 0.6 * result["macs_before"]
    assert result["adaptive"]["macs"] == result["macs_after"] and result["adaptive"]["history"]
    model = deepslim.load(tmp_path / "a")
    widths = [m.out_channels for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w % 4 == 0 for w in widths)


def test_magnitude_prune_shrinks_the_file(cli, trained, tmp_path):
    code, out, _ = cli("prune", trained, "--method", "magnitude", "--sparsity", "0.9", "--out", tmp_path / "s", "--json")
    assert code == 0
    dense = (trained / "weights.safetensors").stat().st_size
    assert (tmp_path / "s" / "weights.safetensors").stat().st_size < 0.35 * dense


def test_block_dropping_removes_the_residual_block(cli, trained, tmp_path):
    code, out, _ = cli("prune", trained, "--method", "blocks", "--out", tmp_path / "b", "--json")
    result = json.loads(out)
    assert code == 0 and result["macs_after"] < result["macs_before"] and result["config"]["type"] == "BlockDropping"
    model = deepslim.load(tmp_path / "b")
    assert isinstance(model.stages[0][0], torch.nn.Identity)  # resnet8's one block with an identity shortcut
    assert sum(p.numel() for p in model.parameters()) == result["params_after"]


def test_a_wrong_block_name_lists_the_droppable_blocks(cli, trained, tmp_path):
    code, _, err = cli("prune", trained, "--method", "blocks", "--block-names", "stages.1.0", "--out", tmp_path / "x")
    last = err.strip().splitlines()[-1]  # after the data line: the model has to run once to find its blocks
    assert code == 2 and "'stages.1.0', which is not a droppable block" in last and "stages.0.0" in last
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("extra, message", [
    (("--method", "blocks", "--ratio", "0.5"), "--ratio does not apply to --method blocks"),
    (("--method", "blocks", "--blocks", "1", "--block-names", "stages.0.0"), "--blocks and --block-names"),
    (("--blocks", "1",), "--blocks does not apply to --method channel"),
    (("--ratio", "1.5"), "out of range"),
    (("--method", "nm", "--n", "5", "--m", "4"), "NMSparsity.n"),
    (("--method", "adaptive", "--mac-ratio", "1.2"), "--mac-ratio"),
])
def test_prune_bad_input(cli, trained, tmp_path, extra, message):
    code, _, err = cli("prune", trained, "--out", tmp_path / "x", *extra)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1


def test_prune_refuses_to_overwrite_its_input(cli, trained):
    before = (trained / "weights.safetensors").read_bytes()
    code, _, err = cli("prune", trained, "--out", trained)
    assert code == 2 and "input model's folder" in err
    assert (trained / "weights.safetensors").read_bytes() == before


def test_prune_and_quantize_fine_tune_with_distillation(synthetic_run, cli, tmp_path):
    import json

    source = synthetic_run("resnet8")
    code, out, _ = cli("--quiet", "prune", source, "--method", "channel", "--ratio", "0.5", "--finetune-epochs", "1",
                       "--distill", "--json", "--out", tmp_path / "p")
    assert code == 0 and json.loads(out)["distilled"] is True
    code, out, _ = cli("--quiet", "quantize", source, "--method", "qat", "--finetune-epochs", "1", "--distill",
                       "--kd-alpha", "0.5", "--json", "--out", tmp_path / "q")
    assert code == 0 and json.loads(out)["distilled"] is True
    code, _, err = cli("prune", source, "--finetune-epochs", "1", "--distill", "--kd-alpha", "3", "--out", tmp_path / "r")
    assert code == 2 and "alpha" in err and not (tmp_path / "r").exists()
