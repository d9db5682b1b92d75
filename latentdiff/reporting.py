"""Shared helpers for RESULTS.md reports: markdown tables and headless matplotlib."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.figure import Figure


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A GitHub markdown table of ``rows`` restricted to ``columns`` (floats to 4 significant)."""

    def cell(value: Any) -> str:
        return f"{value:.4g}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row[c]) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def plot_link(report: str | Path, name: str) -> str:
    """The report's plot ``name`` relative to the report: ``plots/<report stem>_<name>``, so
    reports written side by side keep their own plots."""
    return f"plots/{Path(report).stem.lower()}_{name}"


def plot_path(report: str | Path, name: str) -> Path:
    """Where the report at ``report`` keeps its plot ``name`` (see :func:`plot_link`)."""
    return Path(report).parent / plot_link(report, name)


def write_text_atomically(path: str | Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file, so a reader never sees half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)
    return path


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> None:
    """Write ``fig`` as PNG to ``path`` through a temporary file and close it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    try:
        fig.savefig(temporary, format="png", dpi=dpi)
        os.replace(temporary, path)
    finally:
        plt.close(fig)
