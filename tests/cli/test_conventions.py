"""CLI conventions: one-line usage errors with suggestions, --version, help on every option,
plurals, what to do after Ctrl-C, and model cards that name where a model came from."""

import argparse

import pytest

import deepslim
from deepslim.cli import build_parser
from deepslim.cli.options import DeprecatedAlias
from deepslim.core.text import plural


@pytest.fixture(scope="module")
def trained(synthetic_run):
    return synthetic_run("resnet8")


@pytest.mark.parametrize("args, expected", [
    (("prune", "DIR", "--subest", "5", "--out", "o"),
     "error: deepslim prune: unrecognized argument --subest — did you mean --subset?"),
    (("prune", "DIR", "--method", "chanel", "--out", "o"),
     "error: deepslim prune: argument --method: invalid choice 'chanel' — did you mean 'channel'?"),
    (("prun", "DIR"), "error: deepslim: unknown command 'prun' — did you mean 'prune'?"),
    (("quantize", "DIR", "--observer", "percentil", "--out", "o"), "did you mean 'percentile'?"),
    (("factorize", "DIR", "--energy", "0.9"), "error: deepslim factorize: the following arguments are required: --out"),
    (("train", "--model", "lenet5", "--data", "synthetic", "--out", "o", "--epochs", "two"),
     "error: deepslim train: argument --epochs: invalid int value: 'two'"),
    (("--quiett", "zoo"), "unrecognized argument --quiett — did you mean --quiet?"),
])
def test_usage_errors_are_one_line_with_suggestions(cli, args, expected):
    code, out, err = cli(*args)
    lines = err.strip().splitlines()
    assert code == 2 and out == "" and len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
    assert "usage:" not in err


def test_version(cli):
    from importlib.metadata import version

    code, out, _ = cli("--version")
    assert code == 0 and out.strip() == f"deepslim {version('deepslim')}"
    assert version("deepslim") == deepslim.__version__


def _options(parser: argparse.ArgumentParser, path=("deepslim",)):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _options(sub, (*path, name))
        elif not isinstance(action, argparse._HelpAction):
            yield " ".join(path), action


def test_every_option_has_help_text():
    options = list(_options(build_parser()))
    assert len({p for p, _ in options}) >= 15  # the walk reached every sub-command
    missing = [f"{path} {'/'.join(a.option_strings) or a.dest}" for path, a in options
               if a.help == argparse.SUPPRESS and not isinstance(a, DeprecatedAlias) or
               a.help != argparse.SUPPRESS and not (a.help or "").strip()]
    assert missing == []


def test_plurals():
    assert [plural(1, "epoch"), plural(2, "epoch"), plural(0, "epoch")] == ["1 epoch", "2 epochs", "0 epochs"]
    assert plural(55000, "training image") == "55,000 training images"


def test_messages_and_model_cards_say_what_was_done(cli, trained, tmp_path):
    code, out, err = cli("factorize", trained, "--energy", "0.9", "--finetune-epochs", "1", "--out", tmp_path / "f")
    assert code == 0 and "(after 1 fine-tune epoch)" in out and "1 fine-tune epochs" not in out
    assert "BatchNorm statistics re-estimated on 1,100 training images" in out
    card = (tmp_path / "f" / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# resnet8 factorized (svd) from {trained}\n")
    assert f"- Factorized from `{trained}` (svd): accuracy" in card
    assert "fine-tuned 1 epoch on 1,100 training images; BatchNorm statistics re-estimated" in card
    assert "- Source model's training: 1 epoch, sgd" in card  # the source was trained for one epoch
    assert "- Command: `deepslim factorize " in card


def test_pruned_and_quantized_model_cards_name_their_source(cli, trained, tmp_path):
    assert cli("--quiet", "prune", trained, "--ratio", "0.25", "--out", tmp_path / "p")[0] == 0
    card = (tmp_path / "p" / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# resnet8 pruned (channel) from {trained}\n") and "MACs" in card
    assert cli("--quiet", "quantize", tmp_path / "p", "--calibration-images", "64", "--out", tmp_path / "q")[0] == 0
    card = (tmp_path / "q" / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# resnet8 quantized (ptq) from {tmp_path / 'p'}\n")
    # both steps, oldest first
    assert card.index(f"- Pruned from `{trained}`") < card.index(f"- Quantized from `{tmp_path / 'p'}`")
    assert "onnxruntime int8" in card


def test_distilled_model_card_names_the_teacher(cli, trained, tmp_path):
    code, _, _ = cli("--quiet", "distill", "--teacher", trained, "--student", "lenet5", "--data", "synthetic",
                     "--epochs", "1", "--batch-size", "32", "--kd-temperature", "2", "--out", tmp_path / "s")
    assert code == 0
    card = (tmp_path / "s" / "MODEL_CARD.md").read_text()
    assert card.startswith(f"# lenet5 distilled from {trained} on synthetic\n")
    assert f"- Teacher: `{trained}` (knowledge distillation, temperature 2.0, alpha 0.9)" in card


def test_interrupt_says_what_to_do(cli, trained, tmp_path, monkeypatch):
    import deepslim.cli.prune as prune_command

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prune_command, "load_dataset", interrupted)
    code, _, err = cli("prune", trained, "--finetune-epochs", "2", "--out", tmp_path / "p")
    assert code == 130
    assert err.strip() == ("error: interrupted — nothing was written to --out; rerun the same command "
                           "(--subset N fine-tunes on fewer images)")
    assert not (tmp_path / "p").exists()
