"""The ``rep4d`` command line: one entry point, one subcommand per module in ``rep4d/commands/``."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Command:
    """A subcommand: ``add_arguments(parser)`` declares its options, ``run(args)`` returns the exit status."""

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    order: int = 50


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
    parser = argparse.ArgumentParser(
        prog="rep4d",
        description="4DS, MooG and RVM video representations for Hugging Face Transformers: convert the released "
        "checkpoints, check them against golden fixtures, train, fine-tune readouts, publish and demo.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Run `rep4d COMMAND --help` for the options of a command.",
    )
    from rep4d import __version__

    parser.add_argument("--version", action="version", version=f"rep4d {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in discover_commands():
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description or command.help,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        command.add_arguments(sub)
        sub.set_defaults(_run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
