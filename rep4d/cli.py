"""The ``rep4d`` command line: one entry point, one subcommand per module in ``rep4d/commands/``.

Conventions every command follows (the README's "one flag per concept" table lists the flags):

- A command module defines ``add_arguments(parser)``, ``run(args)`` and, last, ``COMMAND = module_command(__name__,
  help=...)`` (:class:`Command`); it imports nothing heavy (torch, transformers, numpy, rep4d.modeling, ...) at module
  level: ``rep4d --help`` and ``rep4d CMD --help`` only build the parsers.
- A command never prints its own errors. It raises ``ValueError`` / ``FileNotFoundError`` / :class:`UserError`
  (wrong input) with a one-line message naming what was expected; :func:`main` prints ``error: <message>`` and exits
  with status 2. Any other exception is a failure: one line ``error: <type>: <message>`` and status 1.
  ``--debug`` re-raises for the traceback; ``--json`` prints the error as ``{"error": ..., "type": ...}`` on stdout.
- Flags shared between commands are declared once, here: :func:`add_resolution_argument` (``--resolution HxW``),
  :func:`add_num_frames_argument`, :func:`add_num_workers_argument`, :func:`add_fps_argument`,
  :func:`add_device_argument`; a model folder of the wrong family is refused by :func:`require_model_family`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Command:
    """A subcommand: ``add_arguments(parser)`` declares its options, ``run(args)`` returns the exit status.

    ``needs_models``: register rep4d's configs, models, processors, converters and pipelines (``rep4d.register()``)
    before ``run``; commands that never touch a model (``synth``) skip that import cost.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    order: int = 50
    needs_models: bool = True


def module_command(module: str, help: str, order: int = 50, needs_models: bool = True,
                   description: str | None = None) -> Command:
    """``COMMAND = module_command(__name__, help=...)`` at the end of a command module: the command named after the
    module (``moog_attention`` -> ``moog-attention``) whose ``add_arguments`` and ``run`` are the module's own."""
    namespace = sys.modules[module]
    return Command(name=module.rsplit(".", 1)[-1].replace("_", "-"), help=help, add_arguments=namespace.add_arguments,
                   run=namespace.run, description=description, order=order, needs_models=needs_models)


class UserError(Exception):
    """Bad user input that is neither a value nor a missing file (e.g. an unknown name): ``error: ...``, status 2."""


# Exceptions that mean "the input was wrong": one line on stderr, exit status 2. Everything else exits 1.
USER_ERRORS = (
    UserError,
    ValueError,
    FileNotFoundError,
    FileExistsError,
    NotADirectoryError,
    IsADirectoryError,
    PermissionError,
)

# config.json model_type -> the family name used on the command line and in messages.
MODEL_FAMILIES = {
    "fourds": "4ds", "moog": "moog", "rvm": "rvm", "rep4d_readout": "readout", "dinov2_with_registers": "omnivorous",
}
# family name on the command line -> checkpoint converter method (rep4d.conversion.CONVERTERS)
FAMILY_METHODS = {"4ds": "fourds", "moog": "moog", "rvm": "rvm", "omnivorous": "omnivorous"}


# ------------------------------------------------------------------------------------------------------------------
# Shared flags: one spelling per concept
# ------------------------------------------------------------------------------------------------------------------


def parse_resolution(text: str) -> tuple[int, int]:
    """``"480x880"`` -> (480, 880); ``"256"`` -> (256, 256). Both sides positive integers."""
    parts = str(text).lower().replace("×", "x").split("x")
    try:
        values = [int(part) for part in parts]
    except ValueError:
        values = []
    if len(values) == 1:
        values = values * 2
    if len(values) != 2 or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected HEIGHTxWIDTH (e.g. 480x880) or one size for a square (e.g. 256), "
                                         f"got {text!r}")
    return values[0], values[1]


def _checked_number(convert, accept, expected: str, name: str):
    """An argparse ``type``: ``convert(text)`` when ``accept`` takes the value, else one message naming ``expected``."""

    def parse(text: str):
        try:
            value = convert(text)
        except ValueError:
            value = None
        if value is None or not accept(value):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
        return value

    parse.__name__ = parse.__qualname__ = name
    return parse


positive_int = _checked_number(int, lambda value: value >= 1, "a positive integer", "positive_int")
non_negative_int = _checked_number(int, lambda value: value >= 0, "an integer >= 0", "non_negative_int")
positive_float = _checked_number(float, lambda value: 0 < value < float("inf"), "a positive number", "positive_float")


def add_resolution_argument(parser, default=None, help: str = "frame size HxW (e.g. 480x880) or one size for a "
                            "square (default: the model's)", dest: str = "resolution") -> None:
    """``--resolution HxW``: parsed to a (height, width) tuple (or ``default``)."""
    parser.add_argument("--resolution", dest=dest, type=parse_resolution, default=default, metavar="HxW", help=help)


def add_num_frames_argument(parser, default=None, help: str = "frames per clip", dest: str = "num_frames") -> None:
    """``--num-frames N`` (a positive integer)."""
    parser.add_argument("--num-frames", dest=dest, type=positive_int, default=default, metavar="N", help=help)


def add_num_workers_argument(parser, default: int = 0, help: str = "worker processes") -> None:
    """``--num-workers N`` (an integer >= 0)."""
    parser.add_argument("--num-workers", type=non_negative_int, default=default, metavar="N",
                        help=f"{help} (default {default})")


def add_fps_argument(parser, help: str = "frame rate of the written video (default: the input video's)") -> None:
    """``--fps F``: None means "keep the source frame rate"."""
    parser.add_argument("--fps", type=positive_float, default=None, help=help)


class _DeprecatedAlias(argparse.Action):
    """An old flag spelling, hidden from --help: warns once on stderr and stores ``convert(values, namespace)``."""

    def __init__(self, option_strings, dest, convert=None, replacement="", **kwargs):
        self.convert, self.replacement = convert, replacement
        super().__init__(option_strings, dest, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"warning: {option_string} is deprecated and will be removed in rep4d 0.2; use {self.replacement}",
              file=sys.stderr)
        setattr(namespace, self.dest, self.convert(values, namespace) if self.convert else values)


def add_deprecated_alias(parser, flag: str, replacement: str, dest: str, convert=None, **kwargs) -> None:
    """Keep ``flag`` working as a hidden, deprecated spelling of ``replacement`` (same ``dest``).

    ``convert(values, namespace)`` maps the old value(s) onto the new flag's value; ``kwargs`` go to add_argument
    (``type``, ``nargs``, ``metavar``).
    """
    parser.add_argument(flag, dest=dest, action=_DeprecatedAlias, convert=convert, replacement=replacement,
                        default=argparse.SUPPRESS, **kwargs)


def add_old_resolution_aliases(parser, flags=("--size", "--image-size", "--height", "--width"),
                               dest: str = "resolution", fallback=None) -> None:
    """Hidden deprecated ``--size N`` / ``--image-size H W`` / ``--height H`` / ``--width W`` -> ``--resolution``.

    ``--height``/``--width`` replace one side of the current value (or of ``fallback`` when nothing is set yet).
    """

    def side(index):
        def convert(value, namespace):
            current = list(getattr(namespace, dest, None) or fallback or (value, value))
            current[index] = value
            return tuple(current)

        return convert

    if "--size" in flags:
        add_deprecated_alias(parser, "--size", "--resolution N (or HxW)", dest, type=positive_int,
                             convert=lambda value, _: (value, value))
    if "--image-size" in flags:
        add_deprecated_alias(parser, "--image-size", "--resolution HxW", dest, type=positive_int, nargs=2,
                             convert=lambda values, _: tuple(values))
    if "--height" in flags:
        add_deprecated_alias(parser, "--height", "--resolution HxW", dest, type=positive_int, convert=side(0))
    if "--width" in flags:
        add_deprecated_alias(parser, "--width", "--resolution HxW", dest, type=positive_int, convert=side(1))


def converter_method(text: str) -> str:
    """A family name on the command line (``4ds``, ``moog``, ``rvm``) -> the converter's method name (``fourds``...).

    ``fourds`` is still accepted (deprecated spelling of ``4ds``).
    """
    value = str(text).strip().lower()
    if value == "fourds":
        print("warning: the family name 'fourds' is deprecated and will be removed in rep4d 0.2; use 4ds",
              file=sys.stderr)
        value = "4ds"
    if value not in FAMILY_METHODS:
        raise argparse.ArgumentTypeError(f"unknown model family {text!r}; choose one of {', '.join(FAMILY_METHODS)}")
    return FAMILY_METHODS[value]


def add_method_argument(parser, help: str = "force the model family instead of detecting it from the arrays") -> None:
    """``--method {4ds,moog,rvm,omnivorous}``, stored as the converter method name (``fourds``, ``moog``, ``rvm``, ``omnivorous``)."""
    parser.add_argument("--method", type=converter_method, metavar="{4ds,moog,rvm,omnivorous}", help=help)


def add_device_argument(parser) -> None:
    parser.add_argument("--device", help="torch device (default: cuda if available, else cpu)")


def resolve_device(device: str | None) -> str:
    import torch

    return device or ("cuda" if torch.cuda.is_available() else "cpu")


def require_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path if it is an existing file, else FileNotFoundError naming ``what`` was expected."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder" if path.is_dir() else "does not exist"
        raise FileNotFoundError(f"{what} {path} {problem}")
    return path


def read_video_metadata(path: str | os.PathLike):
    """The decoder metadata (``fps``, ``total_num_frames``, size) of a video file, decoding one frame; a missing file
    or one FFmpeg cannot decode is a one-line FileNotFoundError / ValueError."""
    import av

    from rep4d.processing.video_processing_base import read_video_pyav

    require_file(path, "input video")
    try:
        _, metadata = read_video_pyav(path, sample_indices_fn=lambda metadata: [0])
    except (av.FFmpegError, IndexError) as error:
        reason = getattr(error, "strerror", None) or str(error) or type(error).__name__
        raise ValueError(f"cannot decode {path} as a video (expected a file FFmpeg reads, e.g. .mp4): "
                         f"{reason}") from error
    return metadata


# ------------------------------------------------------------------------------------------------------------------
# Model families
# ------------------------------------------------------------------------------------------------------------------


def read_model_config(model: str | os.PathLike) -> dict:
    """config.json of a local model folder or a Hub repo id (from the cache or the Hub), without loading weights."""
    path = Path(model)
    if path.is_dir():
        config_file = path / "config.json"
        if not config_file.is_file():
            raise FileNotFoundError(f"{model} has no config.json: expected a model folder (rep4d convert output)")
    elif path.exists():
        raise NotADirectoryError(f"{model} is a file: expected a model folder (rep4d convert output) or a Hub repo id")
    elif str(model).count("/") != 1 or str(model).startswith((".", "/", "~")):
        raise FileNotFoundError(f"model folder {model} does not exist (expected a folder written by rep4d convert "
                                "or a Hub repo id such as rep4d/rvm-s)")
    else:
        from huggingface_hub import hf_hub_download

        try:
            config_file = Path(hf_hub_download(str(model), "config.json"))
        except Exception as error:  # noqa: BLE001  (offline, unknown repo, ...: one message for all)
            raise FileNotFoundError(f"cannot find model {model}: no such folder, and its config.json is not "
                                    f"available from the Hub ({type(error).__name__})") from error
    try:
        return json.loads(config_file.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{config_file} is not valid JSON: {error}") from error


def model_family(config: dict) -> str:
    """The family name (``4ds``, ``moog``, ``rvm``, ``readout``) of a config.json dict; the model_type otherwise."""
    model_type = config.get("model_type", "<no model_type>")
    return MODEL_FAMILIES.get(model_type, model_type)


def require_model_family(model: str | os.PathLike, expected: str | Iterable[str], command: str) -> dict:
    """Read ``model``'s config.json and refuse it, before any weights load, unless its family is ``expected``.

    Returns the config dict. The message names the family expected and the one found.
    """
    expected = (expected,) if isinstance(expected, str) else tuple(expected)
    config = read_model_config(model)
    found = model_family(config)
    if found not in expected:
        architectures = ", ".join(config.get("architectures") or []) or "no architectures listed"
        raise ValueError(f"{command} needs a model of family {' or '.join(expected)}; {model} is of family {found} "
                         f"(model_type {config.get('model_type')!r}, {architectures})")
    return config


# ------------------------------------------------------------------------------------------------------------------
# Parser and entry point
# ------------------------------------------------------------------------------------------------------------------


def discover_commands() -> list[Command]:
    from rep4d import commands

    found = []
    for module_info in pkgutil.iter_modules(commands.__path__):
        module = importlib.import_module(f"rep4d.commands.{module_info.name}")
        command = getattr(module, "COMMAND", None)
        if isinstance(command, Command):
            found.append(command)
    return sorted(found, key=lambda command: (command.order, command.name))


def build_parser() -> argparse.ArgumentParser:
    from rep4d import __version__

    parser = argparse.ArgumentParser(
        prog="rep4d",
        description="4DS, MooG and RVM video representations for Hugging Face Transformers: convert the released "
        "checkpoints, check them against golden fixtures, train, fine-tune readouts, publish and demo.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `rep4d COMMAND --help` for the options of a command. Errors are one line (exit status 2 for "
        "wrong input, 1 for failures); --debug shows the traceback.",
    )
    parser.add_argument("--version", action="version", version=f"rep4d {__version__}")
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    parser.add_argument("--json", dest="json_errors", action="store_true",
                        help="print errors as a JSON object {\"error\": ..., \"type\": ...} on stdout (a command's own "
                        "--json does the same)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in discover_commands():
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        _add_debug_flag(sub)
        sub.set_defaults(_command=command)
    return parser


def _add_debug_flag(parser: argparse.ArgumentParser) -> None:
    """``--debug`` after the command name too (and after nested sub-commands such as ``benchmark propagation``);
    SUPPRESS keeps a global ``rep4d --debug CMD`` from being reset by the subparser's default."""
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="on an error, show the full traceback")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for nested in set(action.choices.values()):
                _add_debug_flag(nested)


def error_message(error: BaseException) -> str:
    """One line: the message of ``error`` (a KeyError's repr quotes are dropped), newlines folded."""
    text = str(error.args[0]) if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(text.split()) or type(error).__name__


def report_error(error: BaseException, as_json: bool) -> int:
    user_error = isinstance(error, USER_ERRORS)
    message = error_message(error)
    if as_json:
        print(json.dumps({"error": message, "type": type(error).__name__}), flush=True)
    elif user_error:
        print(f"error: {message}", file=sys.stderr)
    else:
        print(f"error: {type(error).__name__}: {message} (run with --debug for the traceback)", file=sys.stderr)
    return 2 if user_error else 1


def run_command(command: Command, argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run one command as its own program (e.g. ``python -m rep4d.training.train`` under torchrun), with the same
    flags and the same error handling as ``rep4d COMMAND``."""
    parser = argparse.ArgumentParser(prog=prog or f"rep4d {command.name}", description=command.description or
                                     command.help, formatter_class=argparse.RawDescriptionHelpFormatter)
    command.add_arguments(parser)
    parser.add_argument("--debug", action="store_true", help="on an error, show the full traceback")
    parser.set_defaults(_command=command)
    return _run(parser.parse_args(argv))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "_command", None) is None:
        parser.print_help()
        return 2
    return _run(args)


def _run(args: argparse.Namespace) -> int:
    command = args._command
    try:
        if command.needs_models:
            import rep4d

            rep4d.register()
        return int(command.run(args) or 0)
    except Exception as error:  # the one error handler of the command line
        if args.debug:
            raise
        return report_error(error, as_json=bool(getattr(args, "json", False) or getattr(args, "json_errors", False)))


if __name__ == "__main__":
    sys.exit(main())
