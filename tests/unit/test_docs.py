"""The handover docs agree with the code: the triage matrix, the diagram's routes, the commands."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest
from invoke.collection import Collection
from mgm_stack.triage import CLASSES

from envkit.errors import DocsError
from envkit.evidence.docs import END, START, main, render_triage_matrix, sync_handover

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "e2e"
HANDOVER = DOCS / "HANDOVER.md"
MGM_ROUTES = (
    "/api/twitch/eventsub", "/api/pool/me", "/api/e2e/prepare-pending-payout", "/run-sequence",
    "/helix/chat/messages", "/api/payouts/",
)  # fmt: skip
# Options of invoke itself that may come before the task name: `./inv --help tier-b`.
CORE_FLAGS = ("--help", "-h", "--list", "-l")


@pytest.fixture(scope="module")
def task_flags(tasks_module: ModuleType) -> dict[str, set[str]]:
    """Every task of tasks.ns, with the flags it accepts (long and short)."""
    ns = tasks_module.ns
    assert isinstance(ns, Collection)
    flags: dict[str, set[str]] = {}
    for name in ns.task_names:
        names = {n for argument in ns[name].get_arguments() for n in argument.names}
        flags[name] = {("--" if len(n) > 1 else "-") + n for n in names}
    return flags


def _matrix_in(text: str) -> str:
    start, end = text.index(START) + len(START), text.index(END)
    return text[start:end].strip("\n")


def _code(text: str) -> list[str]:
    """The text of every fenced code block line and every inline code span."""
    pieces: list[str] = []
    fenced = re.compile(r"^```[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)
    for block in fenced.findall(text):
        pieces += block.splitlines()
    for span in re.findall(r"`([^`\n]+)`", fenced.sub("", text)):
        pieces.append(span)
    return pieces


def _commands(text: str) -> list[tuple[str, list[str], str]]:
    """(task, tokens after it, the command as written) for each `./inv` or `invoke` command."""
    found = []
    for piece in _code(text):
        for match in re.finditer(r"(?:^|[\s(])(?:\./inv|invoke)\s+([^#;|&]*)", piece):
            tokens = match.group(1).split()
            while tokens and tokens[0] in CORE_FLAGS:
                tokens.pop(0)
            if tokens:
                found.append((tokens[0], tokens[1:], match.group(0).strip()))
    return found


# --- the troubleshooting matrix ------------------------------------------------------------


def test_the_handover_matrix_is_the_one_generated_from_the_triage_classes() -> None:
    assert _matrix_in(HANDOVER.read_text()) == render_triage_matrix(), (
        "docs/e2e/HANDOVER.md's troubleshooting matrix differs from CLASSES; "
        "run `python -m envkit.evidence.docs` to regenerate it"
    )
    assert sync_handover(HANDOVER, check=True)


def test_every_triage_class_is_named_in_the_handover() -> None:
    text = HANDOVER.read_text()
    for triage_class in CLASSES:
        assert f"`{triage_class.name}`" in text, triage_class.name


def test_the_matrix_has_one_row_per_class_with_pipes_escaped() -> None:
    rows = render_triage_matrix().splitlines()
    assert rows[0] == "| class | symptom | read first | likely cause | fix |"
    assert len(rows) == 2 + len(CLASSES)
    for row, triage_class in zip(rows[2:], CLASSES, strict=True):
        cells = re.split(r"(?<!\\)\|", row)[1:-1]
        assert len(cells) == 5, row
        assert cells[0].strip() == f"`{triage_class.name}`"
        assert cells[2].strip() == f"`{triage_class.first_log}`"


def test_sync_rewrites_only_between_the_markers_and_check_never_writes(tmp_path: Path) -> None:
    doc = tmp_path / "HANDOVER.md"
    stale = f"# title\n\nbefore\n{START}\n| old | table |\n{END}\nafter\n"
    doc.write_text(stale)
    assert sync_handover(doc, check=True) is False
    assert doc.read_text() == stale
    assert main(["--check", str(doc)]) == 1

    assert sync_handover(doc, check=False) is False
    text = doc.read_text()
    assert text == f"# title\n\nbefore\n{START}\n{render_triage_matrix()}\n{END}\nafter\n"
    assert sync_handover(doc, check=True) is True
    assert main(["--check", str(doc)]) == 0


def test_a_doc_without_markers_is_refused_with_the_fix(tmp_path: Path) -> None:
    doc = tmp_path / "HANDOVER.md"
    doc.write_text("# no markers here\n")
    with pytest.raises(DocsError, match="no '<!-- triage-matrix:start -->'"):
        sync_handover(doc, check=True)
    assert main([str(doc)]) == 2


# --- the sequence diagram --------------------------------------------------------------------


def test_the_handover_has_a_sequence_diagram_with_every_mgm_route() -> None:
    diagrams = re.findall(r"```mermaid\n(.*?)```", HANDOVER.read_text(), re.DOTALL)
    sequences = [d for d in diagrams if d.lstrip().startswith("sequenceDiagram")]
    assert len(sequences) == 1
    diagram = sequences[0]
    for participant in ("Orchestrator", "MockEventSub", "Backend", "PostgreSQL", "MockJwt",
                        "SyntheticDesktop", "MockHelix"):  # fmt: skip
        assert re.search(rf"participant \w+ as {participant}\b", diagram), participant
    for route in MGM_ROUTES:
        assert route in diagram, route
    assert "Tier A" in diagram
    assert "Tier B" in diagram


# --- the commands ----------------------------------------------------------------------------


@pytest.mark.parametrize("doc", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_command_in_the_docs_is_a_real_task_with_real_flags(
    doc: str, task_flags: dict[str, set[str]]
) -> None:
    commands = _commands((DOCS / doc).read_text())
    assert commands, f"{doc} mentions no ./inv command"
    for task, tokens, written in commands:
        assert task in task_flags, f"{doc}: `{written}`: there is no task {task!r} in tasks.ns"
        for token in tokens:
            flag = token.split("=", 1)[0]
            if flag.startswith("-"):
                assert flag in task_flags[task], (
                    f"{doc}: `{written}`: {task} has no flag {flag} "
                    f"(it has: {', '.join(sorted(task_flags[task])) or 'none'})"
                )


def test_the_command_finder_sees_flags_and_core_options() -> None:
    text = "Run `./inv --help tier-b`, then:\n```sh\n./inv clean --images --dry-run  # x\n```\n"
    assert _commands(text) == [
        ("clean", ["--images", "--dry-run"], "./inv clean --images --dry-run"),
        ("tier-b", [], "./inv --help tier-b"),
    ]


def test_the_demo_script_follows_the_handover_order() -> None:
    text = (DOCS / "DEMO.md").read_text()
    order = ["./inv up", "./inv status", "./inv demo --pause",
             "./inv tier-b --override backend.Twitch__HelixApiBaseUrl=http://mock-helix:8080/helix",
             "./inv replay artifacts/", "./inv down"]  # fmt: skip
    positions = [text.find(command) for command in order]
    assert -1 not in positions, dict(zip(order, positions, strict=True))
    assert positions == sorted(positions)
