"""The command line behaves the same everywhere: light --help, one error handler, one flag per concept, source fps,
wrong model families refused before loading."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from fractions import Fraction

import av
import numpy as np
import pytest

import rep4d
from rep4d import cli
from rep4d.cli import Command, UserError, build_parser, main, parse_resolution
from rep4d.visualization import frame_rate, read_video_fps, write_video

# Old spellings that must not be visible in any command's --help (hidden deprecated aliases at most).
OLD_FLAGS = {"--frames", "--max-frames", "--clip-frames", "--size", "--image-size", "--height", "--width", "--workers"}


def subparsers(parser: argparse.ArgumentParser, prefix: str = "rep4d"):
    """(name, parser) of every command, nested ones (``benchmark propagation``) included."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield f"{prefix} {name}", sub
                yield from subparsers(sub, f"{prefix} {name}")


def write_config(folder, model_type: str, architecture: str):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": model_type, "architectures": [architecture]}))
    return folder


@pytest.fixture
def clip(tmp_path):
    return write_video(tmp_path / "clip.mp4", np.random.default_rng(0).random((12, 16, 16, 3)), fps=25)


def one_line_error(capsys) -> str:
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err
    return lines[0]


# --help is light -----------------------------------------------------------------------------------------------


def test_help_imports_nothing_heavy():
    """Every command's --help text is built without torch, transformers, numpy or the models (the <2 s budget)."""
    code = (
        "import sys\n"
        "sys.argv[0] = 'rep4d'\n"  # as the console script: the package import does not register the models
        "import argparse\n"
        "from rep4d.cli import build_parser\n"
        "parser = build_parser()\n"
        "texts = [parser.format_help()]\n"
        "stack = [parser]\n"
        "while stack:\n"
        "    for action in stack.pop()._actions:\n"
        "        if isinstance(action, argparse._SubParsersAction):\n"
        "            for sub in action.choices.values():\n"
        "                texts.append(sub.format_help()); stack.append(sub)\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'numpy', 'av', 'rep4d.modeling', 'rep4d.training.train')\n"
        "               if m in sys.modules)\n"
        "print(len(texts), heavy)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    count, heavy = result.stdout.split(" ", 1)
    assert int(count) >= 12 and heavy.strip() == "[]", result.stdout


def test_python_m_rep4d_help_lists_every_command():
    result = subprocess.run([sys.executable, "-m", "rep4d", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("convert", "parity", "publish", "train", "finetune", "evaluate", "propagate", "moog-attention",
                 "synth", "demo"):
        assert name in result.stdout


def test_import_rep4d_registers_and_names_are_lazy():
    from transformers import AutoConfig, AutoModel, AutoVideoProcessor  # noqa: F401

    config = AutoConfig.for_model("fourds", hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=64)
    assert type(config).__name__ == "FourDSConfig"
    assert rep4d.FourDSModel.__name__ == "FourDSModel" and "RVMModel" in dir(rep4d)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchModel'"):
        rep4d.NoSuchModel  # noqa: B018


def test_train_method_names_match_the_training_code():
    from rep4d.commands.train import METHOD_NAMES
    from rep4d.training.objectives import METHODS

    assert METHOD_NAMES == tuple(METHODS)


# one flag per concept --------------------------------------------------------------------------------------------


def test_one_flag_per_concept_in_every_command():
    seen = 0
    for name, parser in subparsers(build_parser()):
        for action in parser._actions:
            if action.help == argparse.SUPPRESS:
                continue
            assert not OLD_FLAGS & set(action.option_strings), f"{name}: {action.option_strings}"
            if "--resolution" in action.option_strings:
                assert action.type is parse_resolution, name
                seen += 1
            if "--num-workers" in action.option_strings or "--num-frames" in action.option_strings:
                assert action.nargs is None and action.type is not None, name
    assert seen >= 5


@pytest.mark.parametrize("text, expected", [("480x880", (480, 880)), ("256", (256, 256)), ("32X48", (32, 48))])
def test_parse_resolution(text, expected):
    assert parse_resolution(text) == expected


@pytest.mark.parametrize("text", ["0x5", "abc", "1x2x3", "-4", "x"])
def test_parse_resolution_refuses(text):
    with pytest.raises(argparse.ArgumentTypeError, match="HEIGHTxWIDTH"):
        parse_resolution(text)


def test_number_flags_parse_and_refuse_with_one_message():
    assert (cli.positive_int("3"), cli.non_negative_int("0"), cli.positive_float("2.5")) == (3, 0, 2.5)
    refused = [(cli.positive_int, "0", "a positive integer"), (cli.positive_int, "1.5", "a positive integer"),
               (cli.non_negative_int, "-1", "an integer >= 0"), (cli.positive_float, "0", "a positive number"),
               (cli.positive_float, "inf", "a positive number"), (cli.positive_float, "nan", "a positive number"),
               (cli.positive_float, "x", "a positive number")]
    for parse, text, expected in refused:
        with pytest.raises(argparse.ArgumentTypeError, match=f"expected {expected}, got '{text}'"):
            parse(text)


def test_every_command_is_named_after_its_module():
    import importlib
    import pkgutil

    from rep4d import commands

    for info in pkgutil.iter_modules(commands.__path__):
        command = getattr(importlib.import_module(f"rep4d.commands.{info.name}"), "COMMAND", None)
        if command is not None:
            assert command.name == info.name.replace("_", "-"), info.name
            assert command.run.__module__ == command.add_arguments.__module__ == f"rep4d.commands.{info.name}"


def test_old_spellings_are_hidden_deprecated_aliases(capsys):
    args = build_parser().parse_args(["synth", "-o", "x", "--frames", "6", "--height", "32", "--workers", "2"])
    assert (args.num_frames, args.resolution, args.num_workers) == (6, (32, 64), 2)
    err = capsys.readouterr().err
    assert "--frames is deprecated" in err and "use --num-frames" in err and "--workers is deprecated" in err
    args = build_parser().parse_args(["finetune", "--task", "depth", "--backbone", "b", "--data", "d", "-o", "o",
                                      "--image-size", "24", "40"])
    assert args.resolution == (24, 40)
    args = build_parser().parse_args(["demo", "--size", "48"])
    assert args.resolution == (48, 48)
    args = build_parser().parse_args(["convert", "x.npz", "--method", "4ds"])
    assert args.method == "fourds"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["convert", "x.npz", "--method", "mae"])
    assert "unknown model family 'mae'" in capsys.readouterr().err


# one error handler -------------------------------------------------------------------------------------------------


def test_moog_attention_refuses_another_family_and_bad_input(tmp_path, clip, capsys):
    rvm = write_config(tmp_path / "rvm", "rvm", "RVMForMaskedReconstruction")
    assert main(["moog-attention", str(rvm), str(clip), "-o", str(tmp_path / "a.mp4")]) == 2
    line = one_line_error(capsys)
    assert "family moog" in line and "family rvm" in line
    moog = write_config(tmp_path / "moog", "moog", "MooGForNextFramePrediction")
    not_a_video = tmp_path / "notes.txt"
    not_a_video.write_text("hello")
    assert main(["moog-attention", str(moog), str(not_a_video), "-o", str(tmp_path / "a.mp4")]) == 2
    assert "cannot decode" in one_line_error(capsys)
    assert main(["moog-attention", str(moog), str(tmp_path / "missing.mp4"), "-o", str(tmp_path / "a.mp4")]) == 2
    assert "does not exist" in one_line_error(capsys)
    backbone_only = write_config(tmp_path / "moog-backbone", "moog", "MooGModel")
    assert main(["moog-attention", str(backbone_only), str(clip), "-o", str(tmp_path / "a.mp4")]) == 2
    assert "MooGForNextFramePrediction" in one_line_error(capsys)
    assert not (tmp_path / "a.mp4").exists()


def test_propagate_refuses_missing_mask_and_another_family(tmp_path, clip, capsys):
    rvm = write_config(tmp_path / "rvm", "rvm", "RVMModel")
    assert main(["propagate", str(rvm), str(clip), "--mask", str(tmp_path / "missing.png"), "-o",
                 str(tmp_path / "o.mp4")]) == 2
    assert "mask" in one_line_error(capsys)
    readout = write_config(tmp_path / "readout", "rep4d_readout", "ReadoutForDepthEstimation")
    assert main(["propagate", str(readout), str(clip), "--mask", str(tmp_path / "missing.png"), "-o",
                 str(tmp_path / "o.mp4")]) == 2
    line = one_line_error(capsys)
    assert "needs a model of family rvm" in line and "family readout" in line
    assert main(["propagate", str(tmp_path / "nowhere"), str(clip), "--points", "1,2", "-o", str(tmp_path / "o.mp4")]) == 2
    assert "does not exist" in one_line_error(capsys)


def test_finetune_unknown_backbone_is_one_line(tmp_path, capsys):
    assert main(["finetune", "--task", "depth", "--backbone", "NAME", "--data", "synthetic:2", "-o",
                 str(tmp_path / "ft")]) == 2
    assert "NAME" in one_line_error(capsys)
    assert not (tmp_path / "ft").exists()


def fake_command(monkeypatch, error: BaseException):
    def run(args):
        raise error

    command = Command(name="boom", help="fails", add_arguments=lambda parser: parser.add_argument("--json",
                      action="store_true"), run=run, needs_models=False)
    monkeypatch.setattr(cli, "discover_commands", lambda: [command])


@pytest.mark.parametrize("error, status", [(ValueError("bad\nvalue"), 2), (FileNotFoundError("nope"), 2),
                                           (UserError("unknown key 'x'"), 2), (PermissionError("denied"), 2),
                                           (RuntimeError("kaput"), 1), (KeyError("internal"), 1)])
def test_error_statuses_and_one_line(monkeypatch, capsys, error, status):
    fake_command(monkeypatch, error)
    assert main(["boom"]) == status
    line = one_line_error(capsys)
    if status == 1:
        assert line.startswith(f"error: {type(error).__name__}: ") and "--debug" in line
    else:
        assert line == f"error: {' '.join(str(error).split())}"


def test_json_errors_and_debug(monkeypatch, capsys):
    fake_command(monkeypatch, ValueError("expected (T, H, W, 3) uint8"))
    assert main(["boom", "--json"]) == 2
    assert json.loads(capsys.readouterr().out) == {"error": "expected (T, H, W, 3) uint8", "type": "ValueError"}
    assert main(["--json", "boom"]) == 2
    assert json.loads(capsys.readouterr().out)["type"] == "ValueError"
    with pytest.raises(ValueError, match="expected"):
        main(["boom", "--debug"])
    with pytest.raises(ValueError, match="expected"):
        main(["--debug", "boom"])


def test_console_script_error_exit_status(tmp_path):
    """Through a real process: one line on stderr and exit status 2 (python -m rep4d takes the same path)."""
    result = subprocess.run([sys.executable, "-m", "rep4d", "propagate", str(tmp_path / "none"), "v.mp4", "--mask",
                             "m.png", "-o", "o.mp4"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and result.stderr.startswith("error: model folder"), result.stderr


# written videos keep the source frame rate -----------------------------------------------------------------------


@pytest.mark.parametrize("fps", [25, 12.5, 29.97, Fraction(30000, 1001)])
@pytest.mark.parametrize("suffix", [".mp4", ".webm"])
def test_write_video_keeps_the_frame_rate(tmp_path, fps, suffix):
    path = write_video(tmp_path / f"clip{suffix}", np.zeros((3, 8, 10, 3), np.uint8), fps=fps)
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
    assert rate == frame_rate(fps) and abs(float(rate) - float(fps)) < 1e-6
    with pytest.raises(ValueError, match="fps must be a positive number"):
        write_video(tmp_path / "bad.mp4", np.zeros((3, 8, 8, 3), np.uint8), fps=0)


def test_moog_attention_keeps_the_source_frame_rate(tmp_path, clip):
    """12 frames at 25 fps sampled to 3 frames: the output keeps the clip's duration (25 * 3 / 12 = 6.25 fps)."""
    import torch

    from rep4d.modeling.modeling_moog import MooGForNextFramePrediction

    from testing_utils import tiny_moog_config

    torch.manual_seed(0)
    MooGForNextFramePrediction(tiny_moog_config()).save_pretrained(tmp_path / "moog")
    assert main(["moog-attention", str(tmp_path / "moog"), str(clip), "-o", str(tmp_path / "a.mp4"),
                 "--num-frames", "3", "--tokens", "1"]) == 0
    assert read_video_fps(tmp_path / "a.mp4") == pytest.approx(6.25)
    assert main(["moog-attention", str(tmp_path / "moog"), str(clip), "-o", str(tmp_path / "b.mp4"),
                 "--num-frames", "12", "--tokens", "1", "--resolution", "16"]) == 0
    assert read_video_fps(tmp_path / "b.mp4") == pytest.approx(25.0)
