"""``latentdiff <verb> <task>``: the command-line entry point."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from latentdiff.commands import CommandTable

COMMAND_MODULES = (
    "latentdiff.toy.commands",
    "latentdiff.path.commands_train",
    "latentdiff.path.commands_run",
    "latentdiff.se.commands_data",
    "latentdiff.se.commands_model",
    "latentdiff.se.commands_bench",
    "latentdiff.se.commands_export",
    "latentdiff.se.commands_stream",
    "latentdiff.commands_quant",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser: every track registers its verbs and tasks."""
    parser = argparse.ArgumentParser(prog="latentdiff", description=__doc__)
    table = CommandTable(parser.add_subparsers(dest="verb", required=True, metavar="VERB"))
    for module in COMMAND_MODULES:
        importlib.import_module(module).add_commands(table)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the process exit code.

    Bad input (a ``ValueError`` or a missing file) prints one ``latentdiff: error:`` line and
    exits with 2, like argparse's own usage errors.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except (ValueError, FileNotFoundError) as err:
        print(f"latentdiff: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
