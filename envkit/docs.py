"""Keep docs/e2e/HANDOVER.md's troubleshooting matrix generated from the triage classes.

`python -m envkit.docs` rewrites the table between the markers from
`envkit.scenarios.mgm_triage.CLASSES`; `python -m envkit.docs --check` only
says whether it is up to date (exit code 1 when it is stale).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from envkit.errors import DocsError, EnvkitError, FileAccessError
from envkit.images import PROJECT_ROOT
from envkit.scenarios.mgm_triage import CLASSES

HANDOVER = PROJECT_ROOT / "docs" / "e2e" / "HANDOVER.md"
START = "<!-- triage-matrix:start -->"
END = "<!-- triage-matrix:end -->"
HEADER = ("class", "symptom", "read first", "likely cause", "fix")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def render_triage_matrix() -> str:
    """The troubleshooting matrix as a markdown table, one row per triage class."""
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for c in CLASSES:
        cells = (f"`{c.name}`", c.symptom, f"`{c.first_log}`", c.likely_cause, c.fix)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def _replace_matrix(text: str, path: Path) -> str:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise DocsError(
            f"{path} has no '{START}' ... '{END}' pair; add both markers where the "
            "troubleshooting matrix belongs, then run `python -m envkit.docs`.",
            path=path,
        )
    return f"{text[: start + len(START)]}\n{render_triage_matrix()}\n{text[end:]}"


def sync_handover(path: Path = HANDOVER, check: bool = False) -> bool:
    """Whether the matrix in `path` was already up to date; unless `check`, rewrite it if not."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileAccessError(f"Cannot read {path}: {exc.strerror}.", path=path) from exc
    wanted = _replace_matrix(text, path)
    if wanted == text:
        return True
    if not check:
        path.write_text(wanted, encoding="utf-8")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: regenerate the matrix, or with --check report whether it is stale."""
    parser = argparse.ArgumentParser(
        prog="python -m envkit.docs", description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    parser.add_argument("path", nargs="?", type=Path, default=HANDOVER, help="the handover doc")
    args = parser.parse_args(argv)
    try:
        current = sync_handover(args.path, check=args.check)
    except EnvkitError as exc:
        print(f"envkit: {exc}", file=sys.stderr)
        return 2
    if current:
        print(f"{args.path}: the troubleshooting matrix is up to date.")
        return 0
    if args.check:
        print(
            f"{args.path}: the troubleshooting matrix differs from the triage classes; "
            "run `python -m envkit.docs` to regenerate it.",
            file=sys.stderr,
        )
        return 1
    print(f"{args.path}: regenerated the troubleshooting matrix from the triage classes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
