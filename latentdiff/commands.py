"""Registration of command-line sub-commands: tracks add their tasks without editing cli.py."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


@dataclass
class CommandTable:
    """Top-level verbs (``latentdiff VERB``) and per-verb tasks (``latentdiff VERB TASK``)."""

    verbs: argparse._SubParsersAction
    _task_groups: dict[str, argparse._SubParsersAction] = field(default_factory=dict)
    _verb_parsers: dict[str, argparse.ArgumentParser] = field(default_factory=dict)

    def verb(self, name: str, help_text: str) -> argparse.ArgumentParser:
        """A verb that takes options directly, e.g. ``latentdiff plan --map ...``."""
        parser = self.verbs.add_parser(name, help=help_text, description=help_text)
        self._verb_parsers[name] = parser
        return parser

    def task(self, verb: str, name: str, help_text: str) -> argparse.ArgumentParser:
        """A task under a verb, e.g. ``latentdiff train toy-autoencoder``."""
        if verb not in self._task_groups:
            parser = self.verb(verb, VERB_HELP.get(verb, verb))
            self._task_groups[verb] = parser.add_subparsers(
                dest="task", required=True, metavar="TASK"
            )
        return self._task_groups[verb].add_parser(name, help=help_text, description=help_text)


VERB_HELP = {
    "prepare": "build a corpus or data set",
    "train": "train a model (resumes from its last checkpoint)",
    "evaluate": "score models; write RESULTS.md and plots",
    "bench": "speed and quality benchmarks against peers",
}


def named(parse: Callable[[str], T], what: str) -> Callable[[str], tuple[str, T]]:
    """argparse type for ``NAME=VALUE`` options; ``parse`` converts VALUE (named ``what``)."""

    def convert(text: str) -> tuple[str, T]:
        name, sep, value = text.partition("=")
        try:
            if not sep or not name or not value:
                raise ValueError
            return name, parse(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected NAME={what}, got {text!r}") from None

    return convert


named_path = named(Path, "PATH")  # e.g. ``--model latent=exp/final.pt``


def invoked_command() -> str:
    """The running ``latentdiff ...`` command line, shell-quoted (for reports)."""
    return shlex.join(["latentdiff", *sys.argv[1:]])


def add_config_options(parser: argparse.ArgumentParser) -> None:
    """``--config FILE`` plus repeatable ``--set key.path=value`` overrides of a training task."""
    parser.add_argument("--config", type=Path, required=True)
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set trainer.seed=1 (repeatable)",
    )
