"""Report helpers: markdown tables and atomic writes."""

from __future__ import annotations

from pathlib import Path

import pytest

from latentdiff import reporting
from latentdiff.reporting import markdown_table, write_text_atomically


def test_markdown_table_keeps_the_chosen_columns_and_rounds_floats() -> None:
    table = markdown_table([{"a": 1.234567, "b": "x", "c": 3}], ["b", "a"])
    assert table.splitlines() == ["| b | a |", "|---|---|", "| x | 1.235 |"]


def test_text_is_replaced_whole_or_not_at_all(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "reports" / "RESULTS.md"
    assert write_text_atomically(path, "first\n") == path and path.read_text() == "first\n"

    def fail(*_: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(reporting.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        write_text_atomically(path, "second\n")
    assert path.read_text() == "first\n"  # the old report is intact
