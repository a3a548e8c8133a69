"""Small Markdown builders shared by every report envkit writes: tables and fenced blocks."""

from __future__ import annotations

import re
from collections.abc import Sequence


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: Sequence[str]
) -> str:
    """A GitHub table; every cell made table-safe (one line, `|` and backslashes escaped)."""
    lines = [_row(header), _row(align)]
    lines += [_row([table_cell(text) for text in row]) for row in rows]
    return "\n".join(lines)


def table_cell(text: str) -> str:
    """Table-safe text: one line, `|` and backslashes escaped."""
    return one_line(text).replace("\\", "\\\\").replace("|", "\\|")


def one_line(text: str) -> str:
    """`text` with every run of whitespace (newlines too) made one space."""
    return " ".join(text.split())


def fenced(text: str, info: str) -> str:
    """A fenced block whose fence is longer than any backtick run inside `text`."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{info}\n{text.rstrip(chr(10))}\n{fence}"


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"
