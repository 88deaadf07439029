"""Subcommands of the ``rep4d`` command line: each module defines ``COMMAND = Command(...)``."""
