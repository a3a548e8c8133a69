"""Keep docs/e2e/HANDOVER.md's troubleshooting matrix generated from the triage classes.

`python -m envkit.evidence.docs` rewrites the table between the markers from the
`CLASSES` of the stack's scenario module (the stack file's `scenario`; default
the project's default stack); `python -m envkit.evidence.docs --check` only says whether
it is up to date (exit code 1 when it is stale).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from envkit.errors import DocsError, EnvkitError, FileAccessError
from envkit.scenario.orchestrator import scenario_module
from envkit.spec.stack import load_stack
from envkit.spec.workspace import DEFAULT_STACK_FILE

# A maintainer's tool, run from the project root: its defaults are relative to it.
HANDOVER = Path("docs") / "e2e" / "HANDOVER.md"
DEFAULT_STACK = DEFAULT_STACK_FILE
START = "<!-- triage-matrix:start -->"
END = "<!-- triage-matrix:end -->"
HEADER = ("class", "symptom", "read first", "likely cause", "fix")


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def triage_classes(stack_file: Path = DEFAULT_STACK) -> tuple[Any, ...]:
    """The `CLASSES` of the stack's scenario module (its troubleshooting matrix's rows)."""
    stack = load_stack(stack_file)
    if not stack.scenario or stack.scenario.endswith(".toml"):
        raise DocsError(
            f"{stack_file} names no Python scenario module, so it has no triage classes to "
            'document; set scenario = "pkg.module" with a CLASSES tuple in its [stack] table.',
            path=stack_file,
        )
    classes = tuple(getattr(scenario_module(stack.scenario, stack.source), "CLASSES", ()))
    if not classes:
        raise DocsError(
            f"The scenario module {stack.scenario} of {stack_file} has no CLASSES; define "
            "CLASSES, rows with name, symptom, first_log, likely_cause and fix.",
            path=stack_file,
        )
    return classes


def render_triage_matrix(classes: Sequence[Any] | None = None) -> str:
    """The troubleshooting matrix as a markdown table, one row per triage class.

    `classes` default to those of the default stack's scenario (`triage_classes`).
    """
    lines = ["| " + " | ".join(HEADER) + " |", "|" + "---|" * len(HEADER)]
    for c in triage_classes() if classes is None else classes:
        cells = (f"`{c.name}`", c.symptom, f"`{c.first_log}`", c.likely_cause, c.fix)
        lines.append("| " + " | ".join(_cell(cell) for cell in cells) + " |")
    return "\n".join(lines)


def _replace_matrix(text: str, path: Path, stack_file: Path) -> str:
    start, end = text.find(START), text.find(END)
    if start < 0 or end < start:
        raise DocsError(
            f"{path} has no '{START}' ... '{END}' pair; add both markers where the "
            "troubleshooting matrix belongs, then run `python -m envkit.evidence.docs`.",
            path=path,
        )
    matrix = render_triage_matrix(triage_classes(stack_file))
    return f"{text[: start + len(START)]}\n{matrix}\n{text[end:]}"


def sync_handover(
    path: Path = HANDOVER, check: bool = False, stack_file: Path = DEFAULT_STACK
) -> bool:
    """Whether the matrix in `path` was already up to date; unless `check`, rewrite it if not.

    The matrix comes from the triage classes of `stack_file`'s scenario.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise FileAccessError(f"Cannot read {path}: {exc.strerror}.", path=path) from exc
    wanted = _replace_matrix(text, path, stack_file)
    if wanted == text:
        return True
    if not check:
        path.write_text(wanted, encoding="utf-8")
    return False


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: regenerate the matrix, or with --check report whether it is stale."""
    parser = argparse.ArgumentParser(
        prog="python -m envkit.evidence.docs",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("--check", action="store_true", help="only check; exit 1 when stale")
    parser.add_argument("path", nargs="?", type=Path, default=HANDOVER, help="the handover doc")
    parser.add_argument(
        "--stack", type=Path, default=DEFAULT_STACK, help="the stack whose triage classes to use"
    )
    args = parser.parse_args(argv)
    try:
        current = sync_handover(args.path, check=args.check, stack_file=args.stack)
    except EnvkitError as exc:
        print(f"envkit: {exc}", file=sys.stderr)
        return 2
    if current:
        print(f"{args.path}: the troubleshooting matrix is up to date.")
        return 0
    if args.check:
        print(
            f"{args.path}: the troubleshooting matrix differs from the triage classes; "
            "run `python -m envkit.evidence.docs` to regenerate it.",
            file=sys.stderr,
        )
        return 1
    print(f"{args.path}: regenerated the troubleshooting matrix from the triage classes.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
