"""envkit's core knows no particular stack: MGM's words live in compose/, not in envkit/."""

from __future__ import annotations

import re
from pathlib import Path

ENVKIT = Path(__file__).resolve().parents[2] / "envkit"
STACK_WORDS = re.compile(r"mgm|twitch|helix", re.IGNORECASE)
# The repository's own folders linked into the package so the wheel carries them: the
# services' code and the bundled stacks are MGM's by design.
LINKED = {"services", "healthchecks", "compose", "constraints.txt"}


def test_the_linked_folders_are_links_to_the_top_level_ones() -> None:
    for name in LINKED:
        assert (ENVKIT / name).is_symlink(), name
        assert (ENVKIT / name).resolve() == ENVKIT.parent / name


def test_no_file_under_envkit_mentions_mgm_twitch_or_helix() -> None:
    files = [
        p
        for p in ENVKIT.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.relative_to(ENVKIT).parts[0] not in LINKED
    ]
    assert len(files) > 20  # the walk found the package
    found = [
        f"{path.relative_to(ENVKIT.parent)}:{number}: {line.strip()}"
        for path in files
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if STACK_WORDS.search(line)
    ]
    assert found == []
